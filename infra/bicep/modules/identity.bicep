// The app's one user-assigned managed identity: every data-plane call the Function App makes (Cosmos DB,
// Event Hubs, Blob storage, Key Vault, Application Insights) authenticates as this identity.
param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
