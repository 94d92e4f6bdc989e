// spaceflow live: building, floor tabs, the floor plan (Leaflet, CRS.Simple in building metres) coloured by live
// state, a room's nearest free rooms and the way there, beacon health, opt-in people, and the analytics panel
// (analytics.js).
import { showAnalytics } from "./analytics.js";
import { ApiError, allSpaces, api, b, forgetKey, listOf, onUnauthorized, storeKey, storedKey } from "./api.js";
import { mountSignIn, resumeSignIn, signOut, signedIn } from "./auth.js";
import { follow } from "./live.js";
import { PeopleLayer } from "./people.js";

const L = window.L;
const LOW_BATTERY_MV = 2500; // a coin cell below this has weeks left
const COLOURS = { free: "#22c55e", occupied: "#ef4444", booked: "#f59e0b", reclaimable: "#3b82f6", none: "#d1d5db" };
const $ = (id) => document.getElementById(id);

const state = { building: null, site: null, floor: null, spaceLayers: new Map(), spaces: new Map(),
                stop: null, generation: 0, selected: null };

const renderer = L.svg({ padding: 0.5 }); // SVG paths: each space carries data-space-id and data-status
const map = L.map("map", { renderer, crs: L.CRS.Simple, minZoom: -3, maxZoom: 4, zoomSnap: 0.25, attributionControl: false });
map.setView([0, 0], 0); // a loaded map: layers added to it get their SVG elements at once (drawPlan tags them)
const planLayer = L.layerGroup().addTo(map);
const spacesLayer = L.layerGroup().addTo(map);
const beaconsLayer = L.layerGroup().addTo(map);
const routeLayer = L.layerGroup().addTo(map);
const people = new PeopleLayer(map, renderer, $("people"));

function showError(error) {
  const box = $("error");
  if (!error) { box.hidden = true; return; }
  const refused = error instanceof ApiError && error.status === 401;
  box.textContent = !refused ? `Error: ${error.message || error}` : error.byToken
    ? "Your sign-in has expired or was refused: sign in again." : "The API key was refused: enter a key with the read scope.";
  box.hidden = false;
  if (refused) { if (state.stop) state.stop(); people.hide(); if (error.byToken) signOut(); else forgetKey(); askForKey(); }
}

function readFragment() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const key = params.get("key");
  if (key) storeKey(key);
  params.delete("key"); // the key does not stay in the address bar (nor in the history)
  const rest = params.toString();
  history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  return { building: params.get("building"), floor: params.get("floor") };
}

function writeFragment() {
  const params = new URLSearchParams();
  if (state.building) params.set("building", state.building);
  if (state.floor) params.set("floor", state.floor);
  history.replaceState(null, "", `${location.pathname}${location.search}#${params}`);
}

function askForKey() {
  $("key-form").hidden = false;
  $("building-label").hidden = true;
  $("forget").hidden = true;
}

async function start(wanted) {
  $("key-form").hidden = true;
  $("forget").hidden = signedIn();
  const buildings = listOf(await api("/api/v1/buildings"));
  const select = $("building");
  select.replaceChildren(...buildings.map((x) => new Option(`${x.name} (${x.buildingId})`, x.buildingId)));
  $("building-label").hidden = false;
  if (!buildings.length) { showError("no building in this tenant yet"); return; }
  const first = buildings.some((x) => x.buildingId === wanted.building) ? wanted.building : buildings[0].buildingId;
  select.value = first;
  await openBuilding(first, wanted.floor);
}

async function openBuilding(building, floor) {
  state.building = building;
  state.site = await api(b(building));
  const floors = [...state.site.floors].sort((x, y) => (x.ordinal ?? 0) - (y.ordinal ?? 0));
  $("floors").replaceChildren(...floors.map((f) => {
    const tab = document.createElement("button");
    tab.type = "button";
    tab.dataset.floor = f.id;
    tab.textContent = f.shortName || f.name || f.id;
    tab.title = f.name || f.id;
    tab.setAttribute("role", "tab");
    tab.addEventListener("click", () => openFloor(f.id).catch(showError));
    return tab;
  }));
  await openFloor(floors.some((f) => f.id === floor) ? floor : floors[0].id);
}

function spaceStyle(status) {
  return { renderer, color: "#374151", weight: 1, fillColor: COLOURS[status] || COLOURS.none, fillOpacity: 0.65 };
}

async function openFloor(floor) {
  const generation = ++state.generation;
  if (state.stop) state.stop();
  state.floor = floor;
  state.selected = null;
  writeFragment();
  showAnalytics(state.building, state.site, floor);
  for (const tab of $("floors").children) tab.setAttribute("aria-selected", String(tab.dataset.floor === floor));
  const [plan, spaces, beacons] = await Promise.all([
    api(`${b(state.building)}/geojson?floor=${encodeURIComponent(floor)}`),
    allSpaces(state.building, floor),
    api(`${b(state.building)}/beacons/health`).catch(() => null),
  ]);
  if (generation !== state.generation) return; // another tab was clicked meanwhile
  drawPlan(plan);
  applySpaces(spaces);
  drawBeacons(beacons);
  showPeople();
  $("details").innerHTML = '<p class="muted">Click a room for its state, the nearest free rooms and the way there.</p>';
  document.body.dataset.currentFloor = floor; // not data-floor: that names the tabs
  state.stop = follow(state.building, floor, (items, options) => {
    if (generation === state.generation) applySpaces(items, options);
  }, (mode) => { document.body.dataset.live = mode; $("live").textContent = mode === "stream" ? "live (stream)" : "live (every 2 s)"; });
}

function drawPlan(plan) {
  planLayer.clearLayers(); spacesLayer.clearLayers(); routeLayer.clearLayers();
  state.spaceLayers.clear();
  const byType = (type) => plan.features.filter((f) => f.properties.featureType === type);
  const outline = L.geoJSON({ type: "FeatureCollection", features: byType("floor") },
    { style: { renderer, color: "#6b7280", weight: 2, fillColor: "#ffffff", fillOpacity: 1 }, interactive: false }).addTo(planLayer);
  L.geoJSON({ type: "FeatureCollection", features: byType("obstacle") },
    { style: { renderer, color: "#9ca3af", weight: 0, fillColor: "#9ca3af", fillOpacity: 0.8 }, interactive: false }).addTo(planLayer);
  for (const feature of byType("space")) {
    const layer = L.geoJSON(feature, { style: spaceStyle("none") });
    layer.bindTooltip(`${feature.properties.name} (${feature.properties.kind})`, { sticky: true });
    layer.on("click", () => selectSpace(feature.id).catch(showError));
    layer.addTo(spacesLayer);
    for (const path of pathsOf(layer)) { path.setAttribute("data-space-id", feature.id); path.setAttribute("data-status", "none"); }
    state.spaceLayers.set(feature.id, layer);
  }
  L.geoJSON({ type: "FeatureCollection", features: byType("door") },
    { style: { renderer, color: "#f59e0b", weight: 3 }, interactive: false }).addTo(planLayer);
  L.geoJSON({ type: "FeatureCollection", features: byType("amenity") }, {
    pointToLayer: (f, latlng) => L.circleMarker(latlng, { renderer, radius: 3, color: "#6366f1", weight: 1, fillOpacity: 0.9 })
      .bindTooltip(f.properties.name || f.properties.category),
  }).addTo(planLayer);
  const bounds = outline.getBounds();
  if (bounds.isValid()) map.fitBounds(bounds, { padding: [16, 16], animate: false }); // a new plan: no zoom from the last one
}

function pathsOf(group) {
  const out = [];
  group.eachLayer((layer) => {
    if (layer.eachLayer) out.push(...pathsOf(layer)); else if (layer.getElement && layer.getElement()) out.push(layer.getElement());
  });
  return out;
}

function applySpaces(items, { partial = false } = {}) {
  if (!partial) state.spaces.clear();
  for (const space of items) {
    if (space.floor && space.floor !== state.floor) continue;
    state.spaces.set(space.id, space);
  }
  for (const [id, layer] of state.spaceLayers) {
    const space = state.spaces.get(id);
    const status = space ? space.status : "none";
    layer.setStyle(spaceStyle(status));
    for (const path of pathsOf(layer)) {
      if (path.getAttribute("data-status") !== status) path.setAttribute("data-status", status);
      path.setAttribute("data-headcount", String(space ? space.headcount : 0));
    }
    layer.setTooltipContent?.(space ? `${space.name}: ${space.status}, ${space.headcount}/${space.capacity}` : id);
  }
  if (state.selected && !partial) renderState(state.spaces.get(state.selected));
}

function roomCentre(spaceId) {
  const bounds = state.spaceLayers.get(spaceId)?.getBounds();
  return bounds && bounds.isValid() ? bounds.getCenter() : null;
}

function showPeople() {
  if (!$("show-people").checked) { people.hide(); return; }
  $("people-note").textContent = "";
  people.show({ building: state.building, site: state.site, floor: state.floor, roomCentre }, (message) => {
    $("show-people").checked = false;
    $("people-note").textContent = message;
  });
}

function drawBeacons(health) {
  beaconsLayer.clearLayers();
  if (!health) { $("beacon-summary").textContent = ""; return; }
  const here = health.beacons.filter((x) => x.floor === state.floor);
  let low = 0; let silent = 0;
  for (const beacon of here) {
    const isLow = beacon.batteryMv != null && beacon.batteryMv < LOW_BATTERY_MV;
    low += isLow; silent += beacon.silent;
    const condition = beacon.silent ? "silent" : isLow ? "low-battery" : "ok";
    const marker = L.circleMarker(L.latLng(beacon.y, beacon.x), {
      renderer, radius: 4, weight: 2, color: beacon.silent ? "#111827" : isLow ? "#f97316" : "#0ea5e9",
      fillColor: beacon.silent ? "#ffffff" : isLow ? "#fdba74" : "#7dd3fc", fillOpacity: 1, interactive: true })
      .bindTooltip(`${beacon.beaconId}: ${condition}${beacon.batteryMv != null ? `, ${beacon.batteryMv} mV` : ""}`
        + `${beacon.lastHeard ? `, heard ${new Date(beacon.lastHeard).toLocaleString()}` : ", never heard"}`)
      .addTo(beaconsLayer);
    marker.getElement()?.setAttribute("data-beacon", condition);
  }
  $("beacon-summary").textContent = `${here.length} beacons, ${silent} silent, ${low} low battery`;
}

function renderState(space) {
  const box = $("space-state");
  if (!box || !space) return;
  box.innerHTML = "";
  const status = document.createElement("span");
  status.className = `status-${space.status}`;
  status.textContent = space.status;
  box.append(status, ` ${space.headcount} / ${space.capacity} people`,
    space.since ? ` since ${new Date(space.since).toLocaleTimeString()}` : "");
}

async function selectSpace(spaceId) {
  state.selected = spaceId;
  const generation = state.generation;
  const feature = state.spaces.get(spaceId);
  const details = $("details");
  details.innerHTML = "";
  const title = document.createElement("h3");
  title.textContent = feature ? `${feature.name} (${feature.kind})` : spaceId;
  const stateLine = document.createElement("p");
  stateLine.id = "space-state";
  details.append(title, stateLine);
  renderState(feature || await api(`${b(state.building)}/spaces/${encodeURIComponent(spaceId)}`));
  const free = listOf(await api(`${b(state.building)}/free-rooms?near=${encodeURIComponent(spaceId)}`))
    .filter((room) => room.id !== spaceId);
  if (generation !== state.generation) return;
  const heading = document.createElement("h3");
  heading.textContent = "Nearest free rooms";
  const list = document.createElement("ol");
  list.id = "free-rooms";
  for (const room of free.slice(0, 5)) {
    const item = document.createElement("li");
    item.className = "free-room";
    item.dataset.spaceId = room.id;
    item.textContent = `${room.name} (${room.floor}), ${Math.round(room.distanceM)} m, ${Math.round(room.etaS)} s`;
    item.addEventListener("click", () => showRoute(room.id, spaceId).catch(showError));
    list.append(item);
  }
  details.append(heading, free.length ? list : Object.assign(document.createElement("p"), { textContent: "none free" }));
  if (free.length) await showRoute(free[0].id, spaceId);
}

async function showRoute(from, to) {
  const generation = state.generation;
  const route = await api(`${b(state.building)}/route?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
  if (generation !== state.generation) return;
  routeLayer.clearLayers();
  for (const leg of route.legs) {
    if (leg.floor !== state.floor || leg.polyline.length < 2) continue;
    const line = L.polyline(leg.polyline.map(([x, y]) => L.latLng(y, x)),
      { renderer, color: "#2563eb", weight: 4, dashArray: "8 6", interactive: false }).addTo(routeLayer);
    line.getElement()?.setAttribute("data-route", leg.floor);
  }
  document.getElementById("route")?.remove();
  const box = document.createElement("div");
  box.id = "route";
  const heading = document.createElement("h3");
  heading.textContent = `Route: ${Math.round(route.distanceM)} m, about ${Math.round(route.etaS)} s`;
  const steps = document.createElement("ol");
  steps.id = "route-steps";
  for (const text of route.instructions) steps.append(Object.assign(document.createElement("li"), { textContent: text }));
  const other = route.legs.filter((leg) => leg.floor !== state.floor).map((leg) => leg.floor);
  box.append(heading, steps);
  if (other.length) box.append(Object.assign(document.createElement("p"), { className: "muted", textContent: `continues on ${[...new Set(other)].join(", ")}` }));
  $("details").append(box);
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  storeKey($("key-input").value.trim());
  $("key-input").value = "";
  showError(null);
  start(readFragment()).catch(showError);
});
$("building").addEventListener("change", (event) => openBuilding(event.target.value).catch(showError));
$("forget").addEventListener("click", () => { forgetKey(); if (state.stop) state.stop(); people.hide(); askForKey(); });
$("show-people").addEventListener("change", showPeople);
$("show-beacons").addEventListener("change", (event) => {
  if (event.target.checked) beaconsLayer.addTo(map); else beaconsLayer.remove();
});

onUnauthorized(showError);
mountSignIn({ onSignedOut: () => { if (state.stop) state.stop(); people.hide(); askForKey(); }, onError: showError });
// Back from the organization's sign-in first (its answer is in the fragment), then the fragment's own parameters.
resumeSignIn().then(({ wanted: back }) => {
  const wanted = { ...readFragment(), ...back };
  if (signedIn() || storedKey()) return start(wanted);
  askForKey();
}).catch((error) => { askForKey(); showError(error); });
