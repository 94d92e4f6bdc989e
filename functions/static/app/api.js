// The API client of the dashboard: the key lives in sessionStorage and goes in the x-api-key header only.
const KEY = "spaceflow.apiKey";

export function storedKey() { return sessionStorage.getItem(KEY); }
export function storeKey(key) { sessionStorage.setItem(KEY, key); }
export function forgetKey() { sessionStorage.removeItem(KEY); }

export class ApiError extends Error {
  constructor(status, detail) { super(`${status}: ${detail}`); this.status = status; }
}

export async function api(path, { signal } = {}) {
  const response = await fetch(path, { headers: { "x-api-key": storedKey() || "", accept: "application/json" }, signal });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
    throw new ApiError(response.status, detail);
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
