// The deployment's Event Grid topic for the integration events (docs/events.md): CloudEvents 1.0 input schema,
// Entra ID only (no access keys). The app's identity publishes with EventGrid Data Sender (roles.bicep); a tenant's
// events are told apart by their `source` (/tenants/{tenantId}/buildings/{buildingId}), which Event Grid
// subscriptions filter on.
param name string
param location string
param tags object

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

output name string = topic.name
output endpoint string = topic.properties.endpoint
