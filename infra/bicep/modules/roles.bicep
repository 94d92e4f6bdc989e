// Least-privilege data-plane roles for one principal: the app's user-assigned identity, and optionally the
// deploying user (or the pipeline's service principal) so the devkit and azd can reach the same resources.
// Every assignment is scoped to the one resource (or hub, or secret) it is for, never the resource group.
param principalId string

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string

param hostStorageAccountName string
param analyticsStorageAccountName string
param eventHubNamespaceName string
param eventHubName string
param cosmosAccountName string
param keyVaultName string
param adminApiKeySecretName string
param applicationInsightsName string
param eventGridTopicName string

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  eventHubsDataSender: '2b629674-e913-4c01-ae53-ef4638d8f975'
  eventHubsDataReceiver: 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  eventGridDataSender: 'd5a91429-5739-47e2-a06b-3470a27159e7'
}
// Cosmos DB's data plane has its own RBAC: the built-in "Cosmos DB Built-in Data Contributor".
var cosmosDataContributor = '00000000-0000-0000-0000-000000000002'

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageAccountName
}

resource analyticsStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: analyticsStorageAccountName
}

resource eventHubNamespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: eventHubNamespaceName
}

resource eventHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: eventHubNamespace
  name: eventHubName
}

resource cosmosAccount 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' existing = {
  name: cosmosAccountName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource adminApiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: keyVault
  name: adminApiKeySecretName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource eventGridTopic 'Microsoft.EventGrid/topics@2022-06-15' existing = {
  name: eventGridTopicName
}

// The event delivery publishes the eventGrid subscriptions' events to the deployment's topic.
resource eventGridSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventGridTopic.id, principalId, roles.eventGridDataSender)
  scope: eventGridTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventGridDataSender)
    principalId: principalId
    principalType: principalType
  }
}

// The HTTP ingest function publishes batches to the hub.
resource eventHubSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventHub.id, principalId, roles.eventHubsDataSender)
  scope: eventHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataSender)
    principalId: principalId
    principalType: principalType
  }
}

// The Event Hub trigger reads the hub through its consumer group.
resource eventHubReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventHub.id, principalId, roles.eventHubsDataReceiver)
  scope: eventHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventHubsDataReceiver)
    principalId: principalId
    principalType: principalType
  }
}

// The Functions host's own storage: deployment package, Event Hubs checkpoints, timer locks (AzureWebJobsStorage).
resource hostStorageOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, principalId, roles.storageBlobDataOwner)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: principalId
    principalType: principalType
  }
}

// Parquet rollups and dead letters.
resource analyticsContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(analyticsStorage.id, principalId, roles.storageBlobDataContributor)
  scope: analyticsStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: principalId
    principalType: principalType
  }
}

// Read the admin API key only (the secret, not the whole vault).
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(adminApiKeySecret.id, principalId, roles.keyVaultSecretsUser)
  scope: adminApiKeySecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: principalId
    principalType: principalType
  }
}

// Send telemetry to Application Insights with an Entra token (its local auth is off).
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: principalId
    principalType: principalType
  }
}

// Read and write items (and read container metadata) in the account; no control-plane rights.
resource cosmosDataContributorAssignment 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = {
  parent: cosmosAccount
  name: guid(cosmosAccount.id, principalId, cosmosDataContributor)
  properties: {
    roleDefinitionId: '${cosmosAccount.id}/sqlRoleDefinitions/${cosmosDataContributor}'
    principalId: principalId
    scope: cosmosAccount.id
  }
}
