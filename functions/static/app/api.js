// The API client of the dashboard. Its credential is a person's access token when they signed in with their
// organization (auth.js: `Authorization: Bearer`), else an API key (sessionStorage, the `x-api-key` header). Either
// goes in a header only, never in a URL; authHeaders() is the one place that decides which.
import { bearerToken } from "./auth.js";

const KEY = "spaceflow.apiKey";

export function storedKey() { return sessionStorage.getItem(KEY); }
export function storeKey(key) { sessionStorage.setItem(KEY, key); }
export function forgetKey() { sessionStorage.removeItem(KEY); }

export function authHeaders() {
  const token = bearerToken();
  return token ? { authorization: `Bearer ${token}` } : { "x-api-key": storedKey() || "" };
}

// Told of every 401 (a refused key, an expired or revoked token), wherever the call was made (live.js polls too).
let unauthorized = () => {};
export function onUnauthorized(handler) { unauthorized = handler; }

// `byToken`: the refused credential was a person's token (else an API key).
export class ApiError extends Error {
  constructor(status, detail, byToken = false) { super(`${status}: ${detail}`); this.status = status; this.byToken = byToken; }
}

export async function api(path, { signal } = {}) {
  const headers = authHeaders();
  const response = await fetch(path, { headers: { ...headers, accept: "application/json" }, signal });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
    const error = new ApiError(response.status, detail, "authorization" in headers);
    if (response.status === 401) unauthorized(error);
    throw error;
  }
  return response.json();
}

export const b = (building) => `/api/v1/buildings/${encodeURIComponent(building)}`;

// Every page of GET .../spaces ({items, continuationToken}).
export async function allSpaces(building, floor, { signal } = {}) {
  const items = [];
  let token = null;
  do {
    const query = new URLSearchParams({ floor, limit: "1000" });
    if (token) query.set("continuationToken", token);
    const page = await api(`${b(building)}/spaces?${query}`, { signal });
    items.push(...page.items);
    token = page.continuationToken;
  } while (token);
  return items;
}

// A list answer that may come as a plain list or as {items}.
export const listOf = (answer) => (Array.isArray(answer) ? answer : (answer && answer.items) || []);
