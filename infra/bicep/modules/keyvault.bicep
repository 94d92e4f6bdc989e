// Key Vault (Azure RBAC, soft delete, purge protection) holding the admin API key. The Function App reads it through a
// Key Vault reference in its app settings, so the key itself never appears in a setting, an output or the deployment.
param name string
param location string
param tags object

@secure()
@description('The admin API key to store as the secret admin-api-key; shorter than adminApiKeyMinLength: use generatedAdminApiKey.')
param adminApiKey string

@secure()
@description('A random key, stored when adminApiKey is too short (azd\'s first-run placeholder, or none given).')
param generatedAdminApiKey string

@description('The isolated variant (main.bicep networkIsolation): public network access off and firewall default deny; only the private endpoint and trusted Azure services reach the vault.')
param networkIsolation bool

@minValue(7)
@maxValue(90)
@description('Days a deleted vault (or secret) can be recovered; with purge protection nobody can shorten them.')
param softDeleteRetentionInDays int = 7

@minValue(30)
@maxValue(730)
@description('The admin key expires this many days after the provisioning that wrote it: rotate it (or provision again) before then.')
param adminApiKeyValidityDays int

@description('Do not set: the deployment time, from which the admin key\'s validity is counted.')
param now string = utcNow()

// The app refuses an ADMIN_API_KEY shorter than this (shared/settings.py).
var adminApiKeyMinLength = 24

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: default Deny set by networkIsolation=true (the isolated variant, checked in tests/unit/test_infra.py); by default the app's Key Vault reference and azd read the secret over the public endpoint, with Entra RBAC on that one secret
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
    // A deleted vault and its secrets stay recoverable for softDeleteRetentionInDays, whoever deletes them; it cannot
    // be turned off again, and the vault's name stays taken for those days (docs/deploy.md, "Roll back").
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForTemplateDeployment: false
    enabledForDiskEncryption: false
    publicNetworkAccess: networkIsolation ? 'Disabled' : 'Enabled'
    networkAcls: {
      defaultAction: networkIsolation ? 'Deny' : 'Allow'
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
    attributes: {
      enabled: true
      exp: dateTimeToEpoch(dateTimeAdd(now, 'P${adminApiKeyValidityDays}D'))
    }
  }
}

output id string = vault.id
output name string = vault.name
output adminApiKeySecretName string = adminApiKeySecret.name
// Versionless: the app follows rotations (Key Vault references refresh within 24 h, or at a restart).
output adminApiKeySecretUri string = adminApiKeySecret.properties.secretUri
