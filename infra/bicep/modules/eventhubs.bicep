// Event Hubs Standard: the namespace (Entra ID only), the sightings hub, the processing function's consumer group
// and, optionally, Capture of every event to Blob storage as Avro (written with the namespace's own identity).
param namespaceName string
param location string
param tags object

param eventHubName string
param consumerGroupName string

@minValue(1)
@maxValue(32)
@description('Partitions of the hub; fixed once created on the Standard tier. One function instance per partition at most.')
param partitionCount int

@minValue(1)
@maxValue(7)
param messageRetentionInDays int

@minValue(1)
@maxValue(20)
param throughputUnits int

@minValue(0)
@maxValue(20)
@description('Auto-inflate ceiling; 0 (or not above throughputUnits) turns auto-inflate off.')
param maximumThroughputUnits int

param captureEnabled bool

@description('The isolated variant (main.bicep networkIsolation): public network access off, only the private endpoint reaches it.')
param networkIsolation bool

@description('Events and metadata replicated across the region\'s availability zones (set at creation only).')
param zoneRedundant bool

@description('Storage account and container that receive Capture files (used only when captureEnabled).')
param captureStorageAccountName string
param captureContainerName string

var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var autoInflate = maximumThroughputUnits > throughputUnits

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: throughputUnits
  }
  // The namespace's own identity writes Capture files; it has no other permission.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    zoneRedundant: zoneRedundant
    publicNetworkAccess: networkIsolation ? 'Disabled' : 'Enabled'
    isAutoInflateEnabled: autoInflate
    maximumThroughputUnits: autoInflate ? maximumThroughputUnits : 0
  }
}

resource captureContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  name: '${captureStorageAccountName}/default/${captureContainerName}'
}

resource captureWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (captureEnabled) {
  name: guid(namespace.id, captureStorageAccountName, captureContainerName, storageBlobDataContributor)
  scope: captureContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: namespace.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: eventHubName
  properties: {
    partitionCount: partitionCount
    messageRetentionInDays: messageRetentionInDays
    captureDescription: captureEnabled ? {
      enabled: true
      encoding: 'Avro'
      intervalInSeconds: 300
      sizeLimitInBytes: 314572800
      skipEmptyArchives: true
      destination: {
        name: 'EventHubArchive.AzureBlockBlob'
        identity: {
          type: 'SystemAssigned'
        }
        properties: {
          storageAccountResourceId: resourceId('Microsoft.Storage/storageAccounts', captureStorageAccountName)
          blobContainer: captureContainerName
          archiveNameFormat: '{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}'
        }
      }
    } : null
  }
  dependsOn: [
    captureWriter
  ]
}

resource consumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: hub
  name: consumerGroupName
  properties: {
    userMetadata: 'spaceflow: the process_sightings function'
  }
}

output id string = namespace.id
output namespaceName string = namespace.name
output eventHubName string = hub.name
output consumerGroupName string = consumerGroup.name
// serviceBusEndpoint looks like https://<name>.servicebus.windows.net:443/ (another suffix in sovereign clouds).
output fullyQualifiedNamespace string = replace(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
