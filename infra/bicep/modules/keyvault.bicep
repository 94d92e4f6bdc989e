// Key Vault (Azure RBAC, soft delete) holding the admin API key. The Function App reads it through a Key Vault
// reference in its app settings, so the key itself never appears in a setting, an output or the deployment.
param name string
param location string
param tags object

@secure()
@description('The admin API key to store as the secret admin-api-key; shorter than adminApiKeyMinLength: use generatedAdminApiKey.')
param adminApiKey string

@secure()
@description('A random key, stored when adminApiKey is too short (azd\'s first-run placeholder, or none given).')
param generatedAdminApiKey string

@description('Purge protection: once on it cannot be turned off, and the vault name stays taken 90 days after deletion.')
param enablePurgeProtection bool

@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 7

// The app refuses an ADMIN_API_KEY shorter than this (shared/settings.py).
var adminApiKeyMinLength = 24

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    // null leaves it unset: the API rejects an explicit false.
    enablePurgeProtection: enablePurgeProtection ? true : null
    enabledForDeployment: false
    enabledForTemplateDeployment: false
    enabledForDiskEncryption: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource adminApiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'admin-api-key'
  properties: {
    value: length(adminApiKey) >= adminApiKeyMinLength ? adminApiKey : generatedAdminApiKey
    contentType: 'text/plain'
  }
}

output name string = vault.name
output adminApiKeySecretName string = adminApiKeySecret.name
// Versionless: the app follows rotations (Key Vault references refresh within 24 h, or at a restart).
output adminApiKeySecretUri string = adminApiKeySecret.properties.secretUri
