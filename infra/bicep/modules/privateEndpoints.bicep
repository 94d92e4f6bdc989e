// The private endpoints of the isolated variant (main.bicep networkIsolation): one per data service in the private
// endpoints' subnet, each registering its address in the service's private DNS zone (modules/network.bicep) through
// a zone group, so the service's usual host name resolves to the endpoint inside the VNet.
param location string
param tags object

@description('The private endpoints\' subnet.')
param subnetId string

@description('One entry per endpoint: name, serviceId (the resource it reaches), groupId (its sub-resource: Sql, namespace, blob or vault) and dnsZoneName (a zone of modules/network.bicep, in this resource group).')
param endpoints array

resource endpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = [for spec in endpoints: {
  name: spec.name
  location: location
  tags: tags
  properties: {
    subnet: {
      id: subnetId
    }
    privateLinkServiceConnections: [
      {
        name: spec.name
        properties: {
          privateLinkServiceId: spec.serviceId
          groupIds: [
            spec.groupId
          ]
        }
      }
    ]
  }
}]

resource dnsZoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [for (spec, i) in endpoints: {
  parent: endpoint[i]
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: replace(spec.dnsZoneName, '.', '-')
        properties: {
          privateDnsZoneId: resourceId('Microsoft.Network/privateDnsZones', spec.dnsZoneName)
        }
      }
    ]
  }
}]
