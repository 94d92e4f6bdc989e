// Starts @vercel/cosmosdb-server@1.0.1 with fixes for the gaps the Python SDK hits (see /work/shared/DESIGN.md,
// "Local stack"). Usage: node cosmos_server.js --port P [--host H] [--no-ssl]
//
// Nothing inside node_modules is edited: the handler modules are patched at start-up, BEFORE index.js (and with it
// routes.js) is required. routes.js copies each `handler.default` into its router table when it loads, so a
// later replacement of `exports.default` would never be seen. Functions the handlers call through their module
// object at request time (`_patch-operations.patchOperation`, `routes.default`) can be wrapped at any time.
//
// Fixes:
//  1. read-document: a point read of a missing item answered 500 (it read `data[path]` of undefined); nested
//     partition key paths (/site/id) were compared as data["site/id"] and always answered 404.
//  2. batch-documents: the partition key comes from the x-ms-documentdb-partitionkey header when an operation has
//     none (the Python SDK never sends one per operation); Patch operations; atomic batches roll back on failure
//     and answer like Cosmos (HTTP 207, the failed operation's status, 424 for all others).
//  3. _patch-operations: the filter predicate was lower-cased whole (camelCase properties and string literals
//     never matched) and was evaluated against every item with that id in any partition.
//  4. keep-alive: the stock server answers "connection: close" unless keepAlive is set (22 ms a call over HTTPS).
//     GET /__spaceflow/stats reports connections accepted and requests served, so tests can check reuse.
//  5. a missing database or collection: every document operation under it answers 404 with sub-status 1003
//     ("owner resource does not exist"), as Cosmos does, instead of the 404 of a missing item (point reads),
//     a bare 404 (queries, upserts, replaces) or a 500 (creates read `_rid` of undefined).
"use strict";
const path = require("path");

const root = process.env.SPACEFLOW_NODE_MODULES || path.join(__dirname, "..", "..", "node_modules");
const serverLib = path.join(root, "@vercel", "cosmosdb-server", "lib");
const lib = (relative) => require(path.join(serverLib, relative));

const { parsePartitionKey } = lib("utils/get-partition-from-header");
const getPartitionFromHeader = lib("utils/get-partition-from-header").default;
const getValue = lib("utils/get-value").default;
const readJson = lib("json").default;
const trueHeader = lib("true-header").default;
const documentOperations = lib("handler/_document-operations");
const patchOperations = lib("handler/_patch-operations");

const NOT_FOUND = { code: "NotFound", message: "Entity with the specified id does not exist in the system." };
const PRECONDITION_FAILED = {
  code: "PreconditionFailed",
  message: "Operation cannot be performed because one of the specified precondition is not met.",
};
const MAX_BATCH_OPERATIONS = 100; // the Cosmos limit for a transactional batch

// The value a document holds at the collection's partition key path (nested paths included), or undefined.
function partitionValueOf(collection, document) {
  return getValue(collection.documents._getPartitionKeyPath(), document);
}

// The partition key named by a header value such as '["a"]' (undefined for '[{}]', the "no key" marker).
function partitionFromHeaderValue(headerValue) {
  if (headerValue === undefined) return undefined;
  const parsed = JSON.parse(headerValue);
  const value = Array.isArray(parsed) ? parsed[0] : parsed;
  return value !== null && typeof value === "object" ? undefined : value;
}

// --- 1. Point read: 404 for a missing item, nested partition key paths -------------------------------------------
lib("handler/read-document").default = (account, req, res, { dbId, collId, docId }) => {
  const collection = account.database(dbId).collection(collId);
  if (!collection.read()) {
    res.statusCode = 404;
    return { ...NOT_FOUND };
  }
  const header = getPartitionFromHeader(req);
  if (header === undefined) {
    res.statusCode = 400;
    return { code: "BadRequest", message: "A point read needs the x-ms-documentdb-partitionkey header." };
  }
  let partition;
  try {
    partition = parsePartitionKey(header, docId);
  } catch (err) {
    res.statusCode = 400;
    return { code: "BadRequest", message: err.message };
  }
  const data = collection.document(docId, partition).read();
  // The store falls back to the id when a partition value is falsy: make sure the item really is in the
  // partition the client named.
  const expected = partitionFromHeaderValue(header);
  if (!data || (expected !== undefined && partitionValueOf(collection, data) !== expected)) {
    res.statusCode = 404;
    return { ...NOT_FOUND };
  }
  res.statusCode = 200;
  return data;
};

// --- 3. Patch filter predicate: keep its case, evaluate it on the addressed item only -----------------------------
function predicateQuery(condition) {
  const text = condition.trim();
  if (/^select\b/i.test(text)) return text;
  if (/^from\b/i.test(text)) return `SELECT * ${text}`;
  if (/^where\b/i.test(text)) return `SELECT * FROM c ${text}`;
  return `SELECT * FROM c WHERE ${text}`;
}

const stockPatchOperation = patchOperations.patchOperation;
patchOperations.patchOperation = (collection, input) => {
  if (!input.condition) return stockPatchOperation(collection, input);
  const partition = parsePartitionKey(input.partitionKey, input.id);
  const data = collection.document(input.id, partition).read();
  if (!data) return { statusCode: 404, body: { ...NOT_FOUND } };
  if (input.ifMatch && input.ifMatch !== data._etag) return { statusCode: 412, body: { ...PRECONDITION_FAILED } };
  let matches;
  try {
    const { documents } = collection;
    matches = documents._getQuery(predicateQuery(input.condition)).exec([data], { udf: documents._userDefinedFunctions() });
  } catch (err) {
    return { statusCode: 400, body: { code: "BadRequest", message: `Invalid filter predicate: ${err.message}` } };
  }
  if (matches.result.length === 0) {
    return {
      statusCode: 412,
      body: { code: "PreconditionFailed", message: "Condition specified in the patch request is not satisfied." },
    };
  }
  return stockPatchOperation(collection, { ...input, condition: undefined });
};

// --- 2. Transactional batch ---------------------------------------------------------------------------------------
// The item (id, partition value) an operation addresses, to snapshot it before the operation runs.
const ITEM_BODY_OPERATIONS = new Set(["Create", "Upsert", "Replace"]); // their resourceBody is the item itself

function targetOf(collection, input) {
  if (ITEM_BODY_OPERATIONS.has(input.operationType)) {
    const body = input.resourceBody || {};
    return { id: body.id, partition: partitionValueOf(collection, body) };
  }
  return { id: input.id, partition: parsePartitionKey(input.partitionKey, input.id) };
}

function runOperation(collection, input) {
  switch (input.operationType) {
    case "Create":
      return documentOperations.createOperation(collection, input);
    case "Upsert":
      return documentOperations.upsertOperation(collection, input);
    case "Read":
      return documentOperations.readOperation(collection, input);
    case "Delete":
      return documentOperations.deleteOperation(collection, input);
    case "Replace":
      return documentOperations.replaceOperation(collection, input);
    case "Patch": {
      // The Python SDK sends {"operationType": "Patch", "id", "resourceBody": {"operations": [...], "condition"?}}.
      const body = input.resourceBody || {};
      if (!Array.isArray(body.operations)) {
        return { statusCode: 400, body: { code: "BadRequest", message: "Patch needs resourceBody.operations." } };
      }
      return patchOperations.patchOperation(collection, {
        id: input.id,
        partitionKey: input.partitionKey,
        ifMatch: input.ifMatch,
        operations: body.operations,
        condition: body.condition,
      });
    }
    default:
      return {
        statusCode: 400,
        body: { code: "BadRequest", message: `Operation type '${input.operationType}' is not supported in Batch.` },
      };
  }
}

// Puts every snapshotted item back as it was: first drop the current versions (so unique-key index entries of the
// batch's versions go), then re-insert the originals with their own _rid, _etag and _ts.
function restore(collection, snapshots) {
  const { documents } = collection;
  for (const { id, partition } of snapshots.values()) {
    if (documents._item("/id", id, partition).read()) documents.delete(id, partition);
  }
  for (const { before } of snapshots.values()) {
    if (before) documents._set(before);
  }
}

lib("handler/batch-documents").default = async (account, req, res, { dbId, collId }) => {
  const body = await readJson(req);
  const isAtomic = trueHeader(req, "x-ms-cosmos-batch-atomic");
  const continueOnError = trueHeader(req, "x-ms-cosmos-batch-continue-on-error");
  const collection = account.database(dbId).collection(collId);
  if (!collection.read()) {
    res.statusCode = 404;
    return { ...NOT_FOUND };
  }
  if (!Array.isArray(body) || body.length === 0 || body.length > MAX_BATCH_OPERATIONS) {
    res.statusCode = 400;
    return { code: "BadRequest", message: `A batch needs 1 to ${MAX_BATCH_OPERATIONS} operations.` };
  }
  const headerPartitionKey = getPartitionFromHeader(req);
  let batchPartition;
  try {
    batchPartition = partitionFromHeaderValue(headerPartitionKey);
  } catch (err) {
    res.statusCode = 400;
    return { code: "BadRequest", message: `Invalid partition key header: ${headerPartitionKey}` };
  }

  const snapshots = new Map(); // "partition\u0000id" -> { id, partition, before }
  const results = [];
  let failedIndex = -1;
  for (let i = 0; i < body.length; i += 1) {
    if (failedIndex >= 0 && !continueOnError) {
      results.push({ statusCode: 424, requestCharge: 0 });
      continue; // eslint-disable-line no-continue
    }
    // The Python SDK names the partition key once, in the header, not per operation.
    const input = { ...body[i], partitionKey: (body[i] || {}).partitionKey || headerPartitionKey };
    let result;
    try {
      if (ITEM_BODY_OPERATIONS.has(input.operationType) && input.resourceBody && batchPartition !== undefined
          && partitionValueOf(collection, input.resourceBody) !== batchPartition) {
        result = {
          statusCode: 400,
          body: { code: "BadRequest", message: "The partition key of the item differs from the batch's." },
        };
      } else {
        if (isAtomic) {
          const { id, partition } = targetOf(collection, input);
          const key = `${JSON.stringify(partition)}\u0000${id}`;
          if (id !== undefined && !snapshots.has(key)) {
            snapshots.set(key, { id, partition, before: collection.document(id, partition).read() });
          }
        }
        result = runOperation(collection, input);
      }
    } catch (err) {
      // e.g. an upsert that breaks a unique key throws instead of answering 409; a bad partition key throws too.
      result = err.conflict
        ? { statusCode: 409, body: { code: "Conflict", message: err.message } }
        : { statusCode: 400, body: { code: "BadRequest", message: err.message } };
    }
    if (result.statusCode >= 400) {
      if (failedIndex < 0) failedIndex = i;
      results.push({ statusCode: result.statusCode, requestCharge: 0, message: (result.body || {}).message });
    } else {
      results.push({
        statusCode: result.statusCode,
        requestCharge: 1,
        eTag: result.body ? result.body._etag : undefined,
        resourceBody: result.body,
      });
    }
  }

  if (failedIndex >= 0 && isAtomic) {
    // Cosmos applies all operations of an atomic batch or none: undo the ones before the failure and report
    // them as 424 (failed dependency). The batch answers 207 so the SDK raises CosmosBatchOperationError
    // with the failed operation's index and status (a 4xx here would raise a plain HTTP error instead).
    restore(collection, snapshots);
    for (let i = 0; i < results.length; i += 1) {
      if (i !== failedIndex) results[i] = { statusCode: 424, requestCharge: 0 };
    }
  }
  res.statusCode = failedIndex >= 0 ? 207 : 200;
  return results;
};

// --- 5. Document operations under a missing database or collection: 404 / 1003 -----------------------------------
const OWNER_NOT_FOUND = { code: "NotFound", message: "Owner resource does not exist" };
const OWNER_RESOURCE_NOT_FOUND = "1003"; // Cosmos sub-status: the database or container addressed does not exist

function ownerMissing(account, { dbId, collId }) {
  const database = account.database(dbId);
  return !database.read() || !database.collection(collId).read();
}

function guardOwner(handler) {
  return (account, req, res, params) => {
    if (ownerMissing(account, params)) {
      res.statusCode = 404;
      res.setHeader("x-ms-substatus", OWNER_RESOURCE_NOT_FOUND);
      return { ...OWNER_NOT_FOUND };
    }
    return handler(account, req, res, params);
  };
}

// --- 4. Keep-alive, and a debug counter to check it ---------------------------------------------------------------
const stats = { connections: 0, requests: 0 };
const routes = lib("routes");
const stockRoute = routes.default;
// index.js calls routes.default(req) through the module object at request time, so wrapping it here is enough.
routes.default = (req) => {
  if (req.method === "GET" && req.url.split("?")[0] === "/__spaceflow/stats") {
    return [{}, () => ({ ...stats })];
  }
  const route = stockRoute(req);
  const pathname = req.url.split("?")[0];
  if (route && route[0].collId !== undefined && /\/colls\/[^/]+\/docs(\/|$)/.test(pathname)) {
    return [route[0], guardOwner(route[1])];
  }
  return route;
};

// Required only now, so routes.js builds its table from the patched handlers above.
const { createHttpServer, createHttpsServer } = lib("index");

function parseArgs(argv) {
  const args = { port: 8081, host: "127.0.0.1", ssl: true };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === "--port") args.port = parseInt(argv[(i += 1)], 10);
    else if (argv[i] === "--host") args.host = argv[(i += 1)];
    else if (argv[i] === "--no-ssl") args.ssl = false;
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
// The stock server answers "connection: close" unless keepAlive is set: 22 ms a call over HTTPS.
const server = (args.ssl ? createHttpsServer : createHttpServer)({ keepAlive: true });
server.keepAliveTimeout = 30000;
server.headersTimeout = 31000; // must exceed keepAliveTimeout, or idle sockets can be cut mid-request
server.on("connection", () => { stats.connections += 1; });
server.on("request", () => { stats.requests += 1; });
server.listen(args.port, args.host, () => {
  const { port } = server.address();
  console.log(`cosmos server ready on ${args.ssl ? "https" : "http"}://${args.host}:${port}`);
});
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
