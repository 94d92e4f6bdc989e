// The deployment's Event Grid topic for the integration events (docs/events.md): CloudEvents 1.0 input schema,
// Entra ID only (no access keys). The app's identity publishes with EventGrid Data Sender (roles.bicep); a tenant's
// events are told apart by their `source` (/tenants/{tenantId}/buildings/{buildingId}), which Event Grid
// subscriptions filter on.
param name string
param location string
param tags object

@description('The isolated variant (main.bicep networkIsolation): public network access off, only the private endpoint reaches it.')
param networkIsolation bool

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  // checkov:skip=CKV_AZURE_193: Disabled set by networkIsolation=true (the isolated variant, checked in tests/unit/test_infra.py); the default trial variant keeps the public endpoint, Entra ID only (disableLocalAuth)
  name: name
  location: location
  tags: tags
  // Its own identity, for Event Grid subscriptions that deliver to destinations with a managed identity.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: networkIsolation ? 'Disabled' : 'Enabled'
  }
}

output id string = topic.id
output name string = topic.name
output endpoint string = topic.properties.endpoint
