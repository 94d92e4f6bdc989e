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

@description('The isolated variant\'s integration subnet (main.bicep networkIsolation): the app\'s outbound traffic goes through the VNet, where the data services resolve to their private endpoints; empty for none.')
param virtualNetworkSubnetId string

@description('Spread instances over availability zones; the platform then keeps two always-ready instances per function group (billed).')
param zoneRedundant bool

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
// OPENBLAS_NUM_THREADS=1: numpy's OpenBLAS would start a thread per core that spins beside the one thread the
// processing function computes on (measured: 15.2 s of CPU instead of 8.4 s for the same 7.7 s of work).
var hostSettings = {
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  PYTHON_ENABLE_INIT_INDEXING: '1'
  OPENBLAS_NUM_THREADS: '1'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: the zoneRedundant parameter, off by default: on Flex Consumption it keeps two always-ready instances per function group (about $210 a month, docs/deploy.md), and not every region has zones
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
    zoneRedundant: zoneRedundant
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: the app is the public ingest and query API (phones, SDK, dashboards) behind API keys and Entra tokens; networkIsolation closes the data services, a customer's Front Door can front the app
  // checkov:skip=CKV_AZURE_17: callers authenticate with API keys and Entra ID bearer tokens over TLS; mutual TLS would need a client certificate on every phone and browser
  // checkov:skip=CKV_AZURE_212: siteConfig.numberOfWorkers is for dedicated plans; Flex Consumption scales each function group from 0 to maximumInstanceCount, always-ready instances are parameters (2 per group with zoneRedundant)
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
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
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
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // The route that checks each dependency (functions/routes/health.py); public, so a probe needs no key.
      healthCheckPath: '/api/health'
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
  // checkov:skip=CKV_AZURE_222: this resource is the appsettings collection (name/value pairs), not the site config the check reads; the site's public access is decided (and suppressed with its reason) on the site
  // checkov:skip=CKV_AZURE_13: this resource is the appsettings collection (name/value pairs), not the site config the check reads; App Service Authentication would refuse the SDK's API-key calls: the app authenticates every route itself (functions/gate.py)
  // checkov:skip=CKV_AZURE_63: this resource is the appsettings collection (name/value pairs), not the site config the check reads; Flex Consumption has no App Service HTTP log files: requests are logged to Application Insights
  // checkov:skip=CKV_AZURE_65: this resource is the appsettings collection (name/value pairs), not the site config the check reads; detailed error pages would show internals to callers: errors are problem+json, details go to Application Insights
  // checkov:skip=CKV_AZURE_66: this resource is the appsettings collection (name/value pairs), not the site config the check reads; Flex Consumption has no failed request tracing files: failures are in Application Insights
  // checkov:skip=CKV_AZURE_80: this resource is the appsettings collection (name/value pairs), not the site config the check reads; the app runs Python 3.11 (functionAppConfig.runtime), no .NET Framework
  // checkov:skip=CKV_AZURE_88: this resource is the appsettings collection (name/value pairs), not the site config the check reads; Flex Consumption has no Azure Files content share: the package is a blob (functionAppConfig.deployment)
  parent: app
  name: 'appsettings'
  properties: union(appSettings, hostSettings)
}

output name string = app.name
output defaultHostName string = app.properties.defaultHostName
