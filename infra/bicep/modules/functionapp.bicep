// The Function App on the Flex Consumption plan (Linux, Python 3.11), running as the user-assigned identity:
// the deployment package, the host storage (AzureWebJobsStorage), Key Vault references and the Event Hub trigger
// all authenticate with it. No key, password or connection string is stored in a setting.
param planName string
param appName string
param location string
param tags object

@description('azd deploys the code to the app tagged with this service name (azure.yaml services.<name>).')
param serviceName string

param identityId string
param hostStorageBlobEndpoint string
param deploymentContainerName string
param applicationInsightsName string

@description('App settings from main.bicep (the settings the code reads); hostSettings below are added to them.')
param appSettings object

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@minValue(0)
@description('Always-ready instances for the HTTP functions (the FastAPI app): no cold start for the SDK\'s posts.')
param alwaysReadyHttpInstances int

@minValue(0)
@description('Always-ready instances for the Event Hub-triggered process_sightings function.')
param alwaysReadyProcessorInstances int

var alwaysReady = concat(alwaysReadyHttpInstances > 0 ? [
  {
    name: 'http'
    instanceCount: alwaysReadyHttpInstances
  }
] : [], alwaysReadyProcessorInstances > 0 ? [
  {
    name: 'function:process_sightings'
    instanceCount: alwaysReadyProcessorInstances
  }
] : [])

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Settings of the platform rather than of our code. The connection string only says where telemetry goes; with
// the component's local auth off, telemetry is accepted only with the identity's token (the authentication string).
// PYTHON_ENABLE_INIT_INDEXING=1 lets the Python worker index the app at start and serve its HTTP function with
// HTTP streams (function_app.py, docs/streaming.md): without it no HTTP request is answered.
var hostSettings = {
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  PYTHON_ENABLE_INIT_INDEXING: '1'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: alwaysReady
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
  }
}

// Publishing with a user name and password (FTP, the SCM site) is off: azd deploys with an Entra token.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

// A whole-collection write: a setting missing here is removed at the next deployment.
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: app
  name: 'appsettings'
  properties: union(appSettings, hostSettings)
}

output name string = app.name
output defaultHostName string = app.properties.defaultHostName
