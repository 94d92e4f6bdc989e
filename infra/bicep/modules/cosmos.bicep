// Cosmos DB for NoSQL: Entra ID only (no keys), serverless or autoscale, and the database and containers the app
// uses. The containers, partition keys and indexed paths mirror shared/adapters/cosmos.py COSMOS_CONTAINERS
// (tests/unit/test_infra.py holds the two together): every path not listed is excluded from the index.
param accountName string
param location string
param tags object
param databaseName string

@allowed([
  'serverless'
  'autoscale'
])
param capacityMode string

@minValue(1000)
@maxValue(1000000)
@description('Autoscale ceiling (RU/s) shared by the database\'s containers; it scales between 10% and 100% of it.')
param autoscaleMaxThroughput int

@minValue(0)
@description('Days a closed visit is kept (container TTL); 0 keeps visits forever.')
param visitsRetentionDays int

@description('The isolated variant (main.bicep networkIsolation): public network access off, only the private endpoint reaches it.')
param networkIsolation bool

@description('Replicas in three availability zones of the region (set at creation only; the region must have zones).')
param zoneRedundant bool

var visitsTtl = visitsRetentionDays > 0 ? visitsRetentionDays * 86400 : null

// includedPaths are written out as the indexing policy wants them (no lambda to map strings to objects): the policy
// scanner (checkov, tests/unit/test_infra.py) cannot parse lambdas.
var cosmosContainers = [
  {
    name: 'tenants'
    partitionKey: '/tenantId'
    includedPaths: [
      {
        path: '/tenantId/?'
      }
    ]
    defaultTtl: null
  }
  {
    // id = SHA-256 of the key, also the partition key: a lookup is one point read
    name: 'apikeys'
    partitionKey: '/id'
    includedPaths: [
      {
        path: '/tenantId/?'
      }
    ]
    defaultTtl: null
  }
  {
    name: 'buildings'
    partitionKey: '/tenantId'
    includedPaths: [
      {
        path: '/tenantId/?'
      }
    ]
    defaultTtl: null
  }
  {
    // Live state is partitioned by the synthetic key tenantId|buildingId (docs/data-model.md); the -v2 names are
    // new containers because Cosmos DB cannot change the partition key of an existing one.
    name: 'devices-v2'
    partitionKey: '/buildingKey'
    includedPaths: [
      {
        path: '/buildingKey/?'
      }
      {
        path: '/tenantId/?'
      }
      {
        path: '/lastSeen/?'
      }
      {
        path: '/spaceId/?'
      }
      {
        path: '/leavingSpaceId/?'
      }
      {
        path: '/userId/?'
      }
    ]
    defaultTtl: null
  }
  {
    name: 'spaces-v2'
    partitionKey: '/buildingKey'
    includedPaths: [
      {
        path: '/buildingKey/?'
      }
      {
        path: '/tenantId/?'
      }
      {
        path: '/status/?'
      }
      {
        path: '/kind/?'
      }
      {
        path: '/headcountDueAt/?'
      }
      {
        path: '/spaceId/?'
      }
      {
        path: '/start/?'
      }
      {
        path: '/end/?'
      }
      {
        path: '/checkOpen/?'
      }
      {
        path: '/releaseState/?'
      }
    ]
    defaultTtl: null
  }
  {
    name: 'visits-v2'
    partitionKey: '/buildingKey'
    includedPaths: [
      {
        path: '/buildingKey/?'
      }
      {
        path: '/tenantId/?'
      }
      {
        path: '/end/?'
      }
      {
        path: '/start/?'
      }
    ]
    defaultTtl: visitsTtl
  }
  {
    name: 'beacons-v2'
    partitionKey: '/buildingKey'
    includedPaths: [
      {
        path: '/buildingKey/?'
      }
      {
        path: '/tenantId/?'
      }
      {
        path: '/lastHeard/?'
      }
      {
        path: '/kind/?'
      }
      {
        path: '/silenceReported/?'
      }
    ]
    defaultTtl: null
  }
  {
    // event subscriptions (docs/events.md)
    name: 'subscriptions'
    partitionKey: '/tenantId'
    includedPaths: [
      {
        path: '/tenantId/?'
      }
    ]
    defaultTtl: null
  }
  {
    // each event for each subscription with its attempts, kept a week (EVENT_RETENTION_S in shared/adapters/cosmos.py)
    name: 'deliveries'
    partitionKey: '/subscriptionKey'
    includedPaths: [
      {
        path: '/subscriptionKey/?'
      }
      {
        path: '/status/?'
      }
      {
        path: '/nextAttemptAt/?'
      }
      {
        path: '/subject/?'
      }
    ]
    defaultTtl: 604800
  }
  {
    // every event handed on from the outbox, for replays, kept a week
    name: 'events'
    partitionKey: '/buildingKey'
    includedPaths: [
      {
        path: '/buildingKey/?'
      }
      {
        path: '/tenantId/?'
      }
      {
        path: '/time/?'
      }
    ]
    defaultTtl: 604800
  }
  {
    // the change feed trigger's leases (functions/events.py relays the outbox of spaces-v2 and beacons-v2)
    name: 'leases'
    partitionKey: '/id'
    includedPaths: []
    defaultTtl: null
  }
  {
    // people-finder lookups and sharing changes for the tenant's admins, kept a year (AUDIT_RETENTION_S in shared/adapters/cosmos.py)
    name: 'audit'
    partitionKey: '/tenantId'
    includedPaths: [
      {
        path: '/tenantId/?'
      }
      {
        path: '/at/?'
      }
    ]
    defaultTtl: 31536000
  }
]

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  // checkov:skip=CKV_AZURE_101: Disabled set by networkIsolation=true (the isolated variant, checked in tests/unit/test_infra.py); the default trial variant keeps the public endpoint, Entra ID only (disableLocalAuth)
  name: accountName
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: zoneRedundant
      }
    ]
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    capabilities: capacityMode == 'serverless' ? [
      {
        name: 'EnableServerless'
      }
    ] : []
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: networkIsolation ? 'Disabled' : 'Enabled'
    enableAutomaticFailover: false
    enableMultipleWriteLocations: false
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
    options: capacityMode == 'autoscale' ? {
      autoscaleSettings: {
        maxThroughput: autoscaleMaxThroughput
      }
    } : {}
  }
}

resource containers 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = [for container in cosmosContainers: {
  parent: database
  name: container.name
  properties: {
    resource: union({
      id: container.name
      partitionKey: {
        paths: [
          container.partitionKey
        ]
        kind: 'Hash'
        version: 2
      }
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: container.includedPaths
        excludedPaths: [
          {
            path: '/*'
          }
          {
            path: '/"_etag"/?'
          }
        ]
      }
    }, container.defaultTtl == null ? {} : {
      defaultTtl: container.defaultTtl
    })
  }
}]

output id string = account.id
output accountName string = account.name
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
