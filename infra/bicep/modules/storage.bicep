// A StorageV2 account that accepts only Entra ID (no shared keys, no SAS, no anonymous blobs), with its blob
// containers and an optional lifecycle rule that moves old blobs under one prefix to the cool tier.
param name string
param location string
param tags object

@description('Blob containers to create.')
param containerNames array

@description('Blobs under this prefix ("container/" or "container/path") move to the cool tier; empty for no rule.')
param coolTierPrefix string = ''

@minValue(1)
@description('Days after the last modification before a blob under coolTierPrefix moves to the cool tier.')
param coolAfterDays int = 30

@minValue(1)
@maxValue(365)
@description('Days a deleted blob or container can be restored.')
param softDeleteDays int = 7

@allowed([
  'Enabled'
  'Disabled'
])
@description('Disabled in the isolated variant: only private endpoints reach the account.')
param publicNetworkAccess string

@allowed([
  'Allow'
  'Deny'
])
@description('Deny in the isolated variant: no public address is let in (trusted Azure services still are).')
param networkDefaultAction string

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
])
@description('Standard_ZRS keeps the three copies in three availability zones (main.bicep zoneRedundant).')
param skuName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: default Deny set by networkIsolation=true (the isolated variant, checked in tests/unit/test_infra.py); by default the Function App (no VNet) and azd's package upload use the public endpoint, Entra ID only (shared keys off)
  // checkov:skip=CKV_AZURE_206: ZRS with zoneRedundant, else LRS; geo-replication gives no usable second region (Cosmos DB, Event Hubs and the app are in one region) and the host account holds only transient state
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      defaultAction: networkDefaultAction
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for containerName in containerNames: {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}]

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = if (!empty(coolTierPrefix)) {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'old-analytics-to-cool'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                coolTierPrefix
              ]
            }
            actions: {
              baseBlob: {
                tierToCool: {
                  daysAfterModificationGreaterThan: coolAfterDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    containers
  ]
}

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
