// Diagnostic settings: the audit trail of each data service goes to the Log Analytics workspace, next to the app's
// telemetry. Only low-volume audit categories are sent (who changed or deleted what, who read the admin key): the
// per-request logs (Cosmos DataPlaneRequests, blob reads and writes) would run to gigabytes a day at the ingest rate
// and hit the workspace's daily cap, which stops the app's own telemetry too. Platform metrics stay in Azure Monitor
// at no cost and are not copied. docs/deploy.md says how to add a category.
param logAnalyticsWorkspaceId string
param cosmosAccountName string
param eventHubNamespaceName string
param keyVaultName string

@description('Storage accounts whose blob service logs deletions.')
param storageAccountNames array

var settingName = 'audit-to-log-analytics'

resource cosmosAccount 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' existing = {
  name: cosmosAccountName
}

resource eventHubNamespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: eventHubNamespaceName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource storageAccounts 'Microsoft.Storage/storageAccounts@2023-05-01' existing = [for name in storageAccountNames: {
  name: name
}]

resource blobServices 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = [for (name, i) in storageAccountNames: {
  parent: storageAccounts[i]
  name: 'default'
}]

// 2021-05-01-preview is the version the Azure template reference documents: diagnostic settings have no GA version
// since 2016-09-01, which only has the older 'service' shape (tests/unit/test_infra.py allows this one exception).

// Account, database, container, role and network changes (the data-plane requests are not sent, see above).
resource cosmosDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  scope: cosmosAccount
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'ControlPlaneRequests'
        enabled: true
      }
    ]
  }
}

// Namespace and hub operations, and auto-inflate changes of the throughput units.
resource eventHubDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  scope: eventHubNamespace
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'OperationalLogs'
        enabled: true
      }
      {
        category: 'AutoScaleLogs'
        enabled: true
      }
    ]
  }
}

// Every access to the vault: the app's Key Vault reference, people reading or rotating the admin key.
resource keyVaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  scope: keyVault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

// Blob and container deletions (the rollups, dead letters, site models, the deployment package).
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [for (name, i) in storageAccountNames: {
  name: settingName
  scope: blobServices[i]
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}]
