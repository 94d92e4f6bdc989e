// The virtual network of the isolated variant (main.bicep networkIsolation): a subnet for the Function App's outbound
// VNet integration (delegated to Microsoft.App/environments, the delegation Flex Consumption requires), a subnet for
// the data services' private endpoints, a network security group on each, and the private DNS zones, linked to the
// VNet, in which the endpoints register: inside the VNet the services' usual host names resolve to private addresses,
// so the app's settings do not change.
param name string
param location string
param tags object

@description('Address space of the VNet.')
param addressPrefix string

@description('The Function App\'s outbound integration subnet; instances take addresses from it as the app scales out.')
param appSubnetPrefix string

@description('The private endpoints\' subnet: one address per endpoint (five), the rest for peered tooling.')
param privateEndpointSubnetPrefix string

@description('Private DNS zones to create and link (privatelink.* names of the services).')
param privateDnsZoneNames array

var appSubnetName = 'app'
var privateEndpointSubnetName = 'private-endpoints'

// Only Azure's default rules: traffic within the VNet (and peered networks) is allowed, inbound from the internet is
// denied. Here so that a customer's rules have a place to go, and for policies that require an NSG on every subnet.
resource appNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: '${name}-${appSubnetName}-nsg'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource privateEndpointNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: '${name}-${privateEndpointSubnetName}-nsg'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: appSubnetName
        properties: {
          addressPrefix: appSubnetPrefix
          networkSecurityGroup: {
            id: appNsg.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: privateEndpointSubnetName
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          networkSecurityGroup: {
            id: privateEndpointNsg.id
          }
          // The NSG applies to the private endpoints too (off by default for endpoints).
          privateEndpointNetworkPolicies: 'Enabled'
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2024-06-01' = [for zoneName in privateDnsZoneNames: {
  name: zoneName
  location: 'global'
  tags: tags
}]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = [for (zoneName, i) in privateDnsZoneNames: {
  parent: zones[i]
  name: '${name}-link'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}]

output id string = vnet.id
output appSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, appSubnetName)
output privateEndpointSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, privateEndpointSubnetName)
