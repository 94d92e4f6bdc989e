// spaceflow on Azure: one resource group with the Function App (Flex Consumption), Event Hubs, Cosmos DB,
// two storage accounts, Key Vault, Application Insights and one user-assigned identity with least-privilege roles.
// `azd up` deploys it with main.parameters.json; `az deployment sub create` works with the same parameters.
// Secure by default: no service accepts keys or SAS (Entra ID only), and no setting or output holds a secret.
targetScope = 'subscription'

// ---------------------------------------------------------------- where
@minLength(1)
@maxLength(64)
@description('Environment name (azd): names the resource group and seeds the unique resource names.')
param environmentName string

@minLength(1)
@description('Region for every resource; it must offer the Flex Consumption plan.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group to create or reuse; empty for rg-<environmentName>.')
param resourceGroupName string = ''

@description('Object id of the deploying user or pipeline principal: it gets the app\'s data roles (and can read the admin key). Empty for none.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'

// ---------------------------------------------------------------- Function App (Flex Consumption)
@allowed([
  512
  2048
  4096
])
@description('Memory of each instance (MB); execution is billed per GB-second of it.')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Scale-out ceiling of the app.')
param maximumInstanceCount int = 100

@minValue(0)
@description('Always-ready instances for the HTTP API (billed while idle; 0 allows cold starts).')
param alwaysReadyHttpInstances int = 0

@minValue(0)
@description('Always-ready instances for the Event Hub processing function.')
param alwaysReadyProcessorInstances int = 0

// ---------------------------------------------------------------- Event Hubs
@minValue(1)
@maxValue(32)
@description('Partitions of the sightings hub (fixed after creation on Standard): the processing parallelism.')
param eventHubPartitionCount int = 8

@minValue(1)
@maxValue(7)
param eventHubRetentionDays int = 1

@minValue(1)
@maxValue(20)
@description('Throughput units: each takes 1 MB/s or 1,000 events/s in.')
param eventHubThroughputUnits int = 1

@minValue(0)
@maxValue(20)
@description('Auto-inflate ceiling in throughput units; 0 for no auto-inflate.')
param eventHubMaxThroughputUnits int = 4

@description('Capture every event to Blob storage (container "capture" of the analytics account) as Avro; billed per throughput unit-hour.')
param eventHubCaptureEnabled bool = false

// ---------------------------------------------------------------- Cosmos DB
@allowed([
  'serverless'
  'autoscale'
])
@description('serverless: billed per RU used (pilots, small tenants); autoscale: provisioned RU/s shared by the database.')
param cosmosCapacityMode string = 'serverless'

@minValue(1000)
@maxValue(1000000)
@description('Autoscale ceiling in RU/s (autoscale only); billed for the highest RU/s reached each hour, at least 10% of it.')
param cosmosAutoscaleMaxThroughput int = 4000

@minValue(0)
@description('Days closed visits are kept in Cosmos DB (container TTL); the Parquet rollups keep the history. 0 keeps them forever.')
param visitsRetentionDays int = 0

// ---------------------------------------------------------------- storage, monitoring, Key Vault
@minValue(1)
@description('Days after which analytics Parquet files move to the cool tier.')
param analyticsCoolAfterDays int = 30

@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Daily ingestion cap of the Log Analytics workspace in GB; -1 for none.')
param logDailyCapGb int = 2

@minValue(1)
@maxValue(100)
@description('Application Insights ingestion sampling (percent of request and dependency telemetry kept).')
param appInsightsSamplingPercentage int = 25

@description('Accept telemetry only with an Entra token (the identity has Monitoring Metrics Publisher).')
param appInsightsDisableLocalAuth bool = true

@minValue(30)
@maxValue(730)
@description('The admin API key\'s expiry, in days after the provisioning that writes it (every provisioning writes it again).')
param adminApiKeyValidityDays int = 365

@secure()
@description('The admin API key to store in Key Vault (admin-api-key). azd passes the stored one back on every run; on the first run (or when shorter than 24 characters) a random key is generated instead.')
param adminApiKey string = ''

@secure()
// checkov:skip=CKV_AZURE_131: the default is newGuid() twice, a fresh random value at each deployment, not a hard-coded secret; it only ever reaches the Key Vault secret
@description('Do not set: the random admin key used when adminApiKey is shorter than 24 characters.')
param generatedAdminApiKey string = '${replace(newGuid(), '-', '')}${replace(newGuid(), '-', '')}'

// ---------------------------------------------------------------- private networking
@description('Private networking: a VNet, private endpoints and private DNS zones for Cosmos DB, Event Hubs, both storage accounts and Key Vault, their public network access off, and the app\'s outbound traffic through the VNet. The app itself stays public behind its keys and tokens. Off by default so that a trial stays one command from anywhere (docs/deploy.md, "Private networking").')
param networkIsolation bool = false

@description('Address space of the VNet (networkIsolation): choose one that does not overlap the networks it will be peered with.')
param vnetAddressPrefix string = '10.40.0.0/16'

@description('Subnet of the Function App\'s outbound VNet integration (delegated to Microsoft.App/environments).')
param appSubnetPrefix string = '10.40.0.0/24'

@description('Subnet of the private endpoints.')
param privateEndpointSubnetPrefix string = '10.40.1.0/24'

// ---------------------------------------------------------------- resilience
@description('Availability zones for the plan, Cosmos DB, Event Hubs and both storage accounts (ZRS). Decide at the first deployment: Cosmos DB and Event Hubs take it only at creation. Costs more (docs/deploy.md), and the region must have zones.')
param zoneRedundant bool = false

// ---------------------------------------------------------------- values of the app settings (local.settings.json has the same)
@description('COSMOS_DATABASE')
param cosmosDatabaseName string = 'spaceflow'

@description('ANALYTICS_CONTAINER')
param analyticsContainerName string = 'analytics'

@description('DEADLETTER_CONTAINER')
param deadletterContainerName string = 'deadletter'

@description('SITES_CONTAINER')
param sitesContainerName string = 'sites'

@description('EVENTHUB_NAME')
param eventHubName string = 'sightings'

@description('EVENTHUB_CONSUMER_GROUP')
param eventHubConsumerGroupName string = 'spaceflow-processor'

@minValue(30)
@maxValue(86400)
@description('PRESENCE_TIMEOUT_SECONDS: a phone not heard for this long leaves its space')
param presenceTimeoutSeconds int = 300

@description('PRESENCE_SWEEP_SCHEDULE (NCRONTAB, six fields)')
param presenceSweepSchedule string = '*/30 * * * * *'

@description('ROLLUP_HOURLY_SCHEDULE (NCRONTAB, six fields)')
param rollupHourlySchedule string = '0 5 * * * *'

@description('ROLLUP_DAILY_SCHEDULE (NCRONTAB, six fields)')
param rollupDailySchedule string = '0 20 * * * *'

@description('EVENT_DELIVERY_SCHEDULE (NCRONTAB, six fields): event delivery retries and the outbox safety net')
param eventDeliverySchedule string = '*/10 * * * * *'

@minValue(2)
@maxValue(1000)
@description('ANALYTICS_MIN_GROUP_SIZE: analytics cells built from fewer distinct people are suppressed')
param analyticsMinGroupSize int = 5

@description('DASHBOARD_SIGNIN_ORIGINS: origins the dashboard may connect to when people sign in (their issuers), comma-separated')
param dashboardSigninOrigins string = 'https://login.microsoftonline.com'

@description('Where Microsoft Graph posts room mailbox changes: https://<the app host>/api/v1/graph/notifications (GRAPH_NOTIFICATION_URL); empty: no change notifications, the calendar sync timer alone keeps room mailboxes fresh')
param graphNotificationUrl string = ''

// ---------------------------------------------------------------- names
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  app: 'spaceflow'
}
var names = {
  resourceGroup: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  identity: 'id-spaceflow-${resourceToken}'
  logAnalytics: 'log-${resourceToken}'
  applicationInsights: 'appi-${resourceToken}'
  hostStorage: 'sthost${resourceToken}'
  analyticsStorage: 'stdata${resourceToken}'
  eventHubNamespace: 'evhns-spaceflow-${resourceToken}'
  cosmos: 'cosno-spaceflow-${resourceToken}'
  keyVault: 'kv-${resourceToken}'
  eventGridTopic: 'evgt-spaceflow-${resourceToken}'
  plan: 'plan-spaceflow-${resourceToken}'
  functionApp: 'func-spaceflow-${resourceToken}'
  vnet: 'vnet-spaceflow-${resourceToken}'
}
var storageSku = zoneRedundant ? 'Standard_ZRS' : 'Standard_LRS'
// Where each service's private endpoint registers (Azure public cloud names).
var privateDnsZoneNames = {
  cosmos: 'privatelink.documents.azure.com'
  eventHubs: 'privatelink.servicebus.windows.net'
  blob: 'privatelink.blob.core.windows.net'
  keyVault: 'privatelink.vaultcore.azure.net'
  eventGrid: 'privatelink.eventgrid.azure.net'
}
var deploymentContainerName = 'app-package'
var captureContainerName = 'capture'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: names.resourceGroup
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: names.logAnalytics
    applicationInsightsName: names.applicationInsights
    location: location
    tags: tags
    retentionInDays: logRetentionDays
    dailyCapGb: logDailyCapGb
    samplingPercentage: appInsightsSamplingPercentage
    disableLocalAuth: appInsightsDisableLocalAuth
  }
}

// The Functions host's storage: deployment package, Event Hubs checkpoints, timer locks.
module hostStorage 'modules/storage.bicep' = {
  name: 'host-storage'
  scope: rg
  params: {
    name: names.hostStorage
    location: location
    tags: tags
    containerNames: [
      deploymentContainerName
    ]
    skuName: storageSku
    publicNetworkAccess: networkIsolation ? 'Disabled' : 'Enabled'
    networkDefaultAction: networkIsolation ? 'Deny' : 'Allow'
  }
}

// The app's data: Parquet rollups (cool after analyticsCoolAfterDays), dead letters, site models (gzip JSON by
// version, pointed at from Cosmos `buildings`), optional Event Hubs Capture.
module analyticsStorage 'modules/storage.bicep' = {
  name: 'analytics-storage'
  scope: rg
  params: {
    name: names.analyticsStorage
    location: location
    tags: tags
    containerNames: concat([
      analyticsContainerName
      deadletterContainerName
      sitesContainerName
    ], eventHubCaptureEnabled ? [
      captureContainerName
    ] : [])
    coolTierPrefix: '${analyticsContainerName}/'
    coolAfterDays: analyticsCoolAfterDays
    skuName: storageSku
    // Event Hubs Capture writes here as a trusted Azure service, which the storage firewall lets through only while
    // public access is 'Enabled' for selected networks: with Capture on, the isolated account keeps that with none
    // selected (default Deny), so only the private endpoint and trusted services reach it.
    publicNetworkAccess: networkIsolation && !eventHubCaptureEnabled ? 'Disabled' : 'Enabled'
    networkDefaultAction: networkIsolation ? 'Deny' : 'Allow'
  }
}

module eventHubs 'modules/eventhubs.bicep' = {
  name: 'eventhubs'
  scope: rg
  params: {
    namespaceName: names.eventHubNamespace
    location: location
    tags: tags
    eventHubName: eventHubName
    consumerGroupName: eventHubConsumerGroupName
    partitionCount: eventHubPartitionCount
    messageRetentionInDays: eventHubRetentionDays
    throughputUnits: eventHubThroughputUnits
    maximumThroughputUnits: eventHubMaxThroughputUnits
    captureEnabled: eventHubCaptureEnabled
    captureStorageAccountName: analyticsStorage.outputs.name
    captureContainerName: captureContainerName
    zoneRedundant: zoneRedundant
    networkIsolation: networkIsolation
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  scope: rg
  params: {
    accountName: names.cosmos
    location: location
    tags: tags
    databaseName: cosmosDatabaseName
    capacityMode: cosmosCapacityMode
    autoscaleMaxThroughput: cosmosAutoscaleMaxThroughput
    visitsRetentionDays: visitsRetentionDays
    zoneRedundant: zoneRedundant
    networkIsolation: networkIsolation
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    name: names.eventGridTopic
    location: location
    tags: tags
    networkIsolation: networkIsolation
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: names.keyVault
    location: location
    tags: tags
    adminApiKey: adminApiKey
    generatedAdminApiKey: generatedAdminApiKey
    adminApiKeyValidityDays: adminApiKeyValidityDays
    networkIsolation: networkIsolation
  }
}

module appRoles 'modules/roles.bicep' = {
  name: 'roles-app'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    hostStorageAccountName: hostStorage.outputs.name
    analyticsStorageAccountName: analyticsStorage.outputs.name
    eventHubNamespaceName: eventHubs.outputs.namespaceName
    eventHubName: eventHubs.outputs.eventHubName
    cosmosAccountName: cosmos.outputs.accountName
    keyVaultName: keyVault.outputs.name
    adminApiKeySecretName: keyVault.outputs.adminApiKeySecretName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    eventGridTopicName: eventGrid.outputs.name
  }
}

module userRoles 'modules/roles.bicep' = if (!empty(principalId)) {
  name: 'roles-user'
  scope: rg
  params: {
    principalId: principalId
    principalType: principalType
    hostStorageAccountName: hostStorage.outputs.name
    analyticsStorageAccountName: analyticsStorage.outputs.name
    eventHubNamespaceName: eventHubs.outputs.namespaceName
    eventHubName: eventHubs.outputs.eventHubName
    cosmosAccountName: cosmos.outputs.accountName
    keyVaultName: keyVault.outputs.name
    adminApiKeySecretName: keyVault.outputs.adminApiKeySecretName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    eventGridTopicName: eventGrid.outputs.name
  }
}

// The app settings: the names shared/settings.py reads (identity-based forms) plus the Functions host's own
// identity settings. tests/unit/test_infra.py compares them with Settings and local.settings.json.
var appSettings = {
  AzureWebJobsStorage__accountName: hostStorage.outputs.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  AZURE_CLIENT_ID: identity.outputs.clientId
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
  COSMOS__accountEndpoint: cosmos.outputs.endpoint
  // The change feed trigger's connection (functions/events.py) with the same identity.
  COSMOS__credential: 'managedidentity'
  COSMOS__clientId: identity.outputs.clientId
  COSMOS_DATABASE: cosmos.outputs.databaseName
  ANALYTICS_STORAGE__serviceUri: analyticsStorage.outputs.blobEndpoint
  ANALYTICS_CONTAINER: analyticsContainerName
  DEADLETTER_CONTAINER: deadletterContainerName
  SITES_CONTAINER: sitesContainerName
  EVENT_PUBLISHER: 'eventhub'
  EVENTHUB__fullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
  EVENTHUB__credential: 'managedidentity'
  EVENTHUB__clientId: identity.outputs.clientId
  EVENTHUB_NAME: eventHubs.outputs.eventHubName
  EVENTHUB_CONSUMER_GROUP: eventHubs.outputs.consumerGroupName
  PRESENCE_TIMEOUT_SECONDS: string(presenceTimeoutSeconds)
  PRESENCE_SWEEP_SCHEDULE: presenceSweepSchedule
  ROLLUP_HOURLY_SCHEDULE: rollupHourlySchedule
  ROLLUP_DAILY_SCHEDULE: rollupDailySchedule
  EVENT_DELIVERY_SCHEDULE: eventDeliverySchedule
  // Bookings (docs/bookings.md): a booking whose room stays empty this many minutes is a no-show; its timer.
  NO_SHOW_MINUTES: '10'
  NO_SHOW_SCHEDULE: '0 * * * * *'
  BOOKING_SYNC_SCHEDULE: '0 */5 * * * *'
  GRAPH_RENEWAL_SCHEDULE: '0 15 * * * *'
  // Where Graph posts room mailbox changes (https://<host>/api/v1/graph/notifications); empty: no subscriptions.
  GRAPH_NOTIFICATION_URL: graphNotificationUrl
  // Calendar feeds are fetched over https from public addresses only (SSRF), like webhooks.
  CALENDAR_ALLOW_LOOPBACK: 'false'
  ANALYTICS_MIN_GROUP_SIZE: string(analyticsMinGroupSize)
  // People sign in with their tenant's issuer over https; a loopback (devkit) issuer is refused in Azure.
  IDENTITY_ALLOW_LOOPBACK: 'false'
  // Webhooks go to https on public addresses only (SSRF); the devkit's receiver on loopback is local only.
  WEBHOOK_ALLOW_LOOPBACK: 'false'
  // eventGrid subscriptions publish here with the identity (EventGrid Data Sender on this topic only).
  EVENTGRID_TOPIC_ENDPOINT: eventGrid.outputs.endpoint
  // The dashboard's pages may connect there (Content-Security-Policy connect-src) for the code exchange.
  DASHBOARD_SIGNIN_ORIGINS: dashboardSigninOrigins
  ADMIN_API_KEY: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.adminApiKeySecretUri})'
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    planName: names.plan
    appName: names.functionApp
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    hostStorageBlobEndpoint: hostStorage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    appSettings: appSettings
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
    alwaysReadyProcessorInstances: alwaysReadyProcessorInstances
    zoneRedundant: zoneRedundant
    virtualNetworkSubnetId: networkIsolation ? network.outputs.appSubnetId : ''
  }
  // The identity must hold its roles before the host starts (storage, Key Vault reference, Event Hubs); isolated,
  // the host reaches its storage and the vault only through the private endpoints.
  dependsOn: [
    appRoles
    privateEndpoints
  ]
}

// ---------------------------------------------------------------- private networking (networkIsolation)
module network 'modules/network.bicep' = if (networkIsolation) {
  name: 'network'
  scope: rg
  params: {
    name: names.vnet
    location: location
    tags: tags
    addressPrefix: vnetAddressPrefix
    appSubnetPrefix: appSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
    privateDnsZoneNames: [
      privateDnsZoneNames.cosmos
      privateDnsZoneNames.eventHubs
      privateDnsZoneNames.blob
      privateDnsZoneNames.keyVault
      privateDnsZoneNames.eventGrid
    ]
  }
}

// One endpoint per data service; the groupId is the sub-resource the endpoint reaches.
module privateEndpoints 'modules/privateEndpoints.bicep' = if (networkIsolation) {
  name: 'private-endpoints'
  scope: rg
  params: {
    location: location
    tags: tags
    subnetId: network.outputs.privateEndpointSubnetId
    endpoints: [
      {
        name: 'pe-${names.cosmos}'
        serviceId: cosmos.outputs.id
        groupId: 'Sql'
        dnsZoneName: privateDnsZoneNames.cosmos
      }
      {
        name: 'pe-${names.eventHubNamespace}'
        serviceId: eventHubs.outputs.id
        groupId: 'namespace'
        dnsZoneName: privateDnsZoneNames.eventHubs
      }
      {
        name: 'pe-${names.hostStorage}-blob'
        serviceId: hostStorage.outputs.id
        groupId: 'blob'
        dnsZoneName: privateDnsZoneNames.blob
      }
      {
        name: 'pe-${names.analyticsStorage}-blob'
        serviceId: analyticsStorage.outputs.id
        groupId: 'blob'
        dnsZoneName: privateDnsZoneNames.blob
      }
      {
        name: 'pe-${names.keyVault}'
        serviceId: keyVault.outputs.id
        groupId: 'vault'
        dnsZoneName: privateDnsZoneNames.keyVault
      }
      {
        name: 'pe-${names.eventGridTopic}'
        serviceId: eventGrid.outputs.id
        groupId: 'topic'
        dnsZoneName: privateDnsZoneNames.eventGrid
      }
    ]
  }
}

// ---------------------------------------------------------------- diagnostics
// Each data service's audit logs to the Log Analytics workspace (modules/diagnostics.bicep says which and why).
module diagnostics 'modules/diagnostics.bicep' = {
  name: 'diagnostics'
  scope: rg
  params: {
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
    cosmosAccountName: cosmos.outputs.accountName
    eventHubNamespaceName: eventHubs.outputs.namespaceName
    keyVaultName: keyVault.outputs.name
    storageAccountNames: [
      hostStorage.outputs.name
      analyticsStorage.outputs.name
    ]
  }
}

// ---------------------------------------------------------------- outputs (azd writes them to .azure/<env>/.env)
// Named like the app settings they feed, so the devkit can run against Azure with `azd env get-values`.
// None is a secret. AZURE_CLIENT_ID is deliberately not an output: azd and the deploy workflow use that name for
// the pipeline's own identity.
output COSMOS__accountEndpoint string = cosmos.outputs.endpoint
output COSMOS_DATABASE string = cosmos.outputs.databaseName
output ANALYTICS_STORAGE__serviceUri string = analyticsStorage.outputs.blobEndpoint
output ANALYTICS_CONTAINER string = analyticsContainerName
output DEADLETTER_CONTAINER string = deadletterContainerName
output SITES_CONTAINER string = sitesContainerName
output EVENTHUB__fullyQualifiedNamespace string = eventHubs.outputs.fullyQualifiedNamespace
output EVENTHUB_NAME string = eventHubs.outputs.eventHubName
output EVENTHUB_CONSUMER_GROUP string = eventHubs.outputs.consumerGroupName
output PRESENCE_TIMEOUT_SECONDS string = string(presenceTimeoutSeconds)
output PRESENCE_SWEEP_SCHEDULE string = presenceSweepSchedule
output ROLLUP_HOURLY_SCHEDULE string = rollupHourlySchedule
output ROLLUP_DAILY_SCHEDULE string = rollupDailySchedule
output EVENT_DELIVERY_SCHEDULE string = eventDeliverySchedule
output NO_SHOW_MINUTES string = '10'
output NO_SHOW_SCHEDULE string = '0 * * * * *'
output BOOKING_SYNC_SCHEDULE string = '0 */5 * * * *'
output GRAPH_RENEWAL_SCHEDULE string = '0 15 * * * *'
output GRAPH_NOTIFICATION_URL string = graphNotificationUrl
output EVENTGRID_TOPIC_ENDPOINT string = eventGrid.outputs.endpoint
output ANALYTICS_MIN_GROUP_SIZE string = string(analyticsMinGroupSize)
output DASHBOARD_SIGNIN_ORIGINS string = dashboardSigninOrigins
// azd's own
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
