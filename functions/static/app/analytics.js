// The analytics panel (docs/dashboard.md): each room's utilization per day over a date range as a heatmap, and the
// building's occupancy today per hour against a typical same weekday, from GET .../analytics (docs/metrics.md).
import { api, b } from "./api.js";

const Chart = window.Chart;
export const MAX_RANGE_DAYS = 366; // the API's limit for grain=day (MAX_RANGE_DAYS in shared/services/rollups.py)
const DEFAULT_DAYS = 7;
const TYPICAL_WEEKS = 4;
// utilization 0 -> 1 (mean headcount while occupied against capacity); above 1 the room held more than its capacity
const STOPS = [[0, [247, 252, 240]], [0.25, [204, 235, 197]], [0.5, [123, 204, 196]], [0.75, [43, 140, 190]], [1, [8, 64, 129]]];
const OVER_CAPACITY = "rgb(122, 1, 119)";
const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const $ = (id) => document.getElementById(id);

const view = { building: null, site: null, floor: null, from: null, to: null, answer: null,
               heatRequest: 0, weekRequest: 0, chart: null };

// app.js calls this whenever a floor is shown: another building (or site model) loads both panels with the
// default range; another floor of the same building only redraws the heatmap's rows.
export function showAnalytics(building, site, floor) {
  view.floor = floor;
  if (building === view.building && site === view.site) { renderHeatmap(); return; }
  view.building = building;
  view.site = site;
  view.answer = null;
  const today = localToday(site.timeZone);
  // the last 7 whole local days: today's day window is rolled up only after local midnight, so a column for
  // today would always be empty (today is the weekday chart's)
  setRange(addDays(today, -DEFAULT_DAYS), addDays(today, -1));
  loadHeatmap();
  loadWeekday(today);
}

// ------------------------------------------------------------------------------------------------ dates
function localToday(timeZone) {
  try {
    return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date());
  } catch { return new Date().toISOString().slice(0, 10); }
}
const asDate = (day) => new Date(`${day}T00:00:00Z`); // a local date as a calendar day (UTC arithmetic, no DST)
const addDays = (day, n) => { const d = asDate(day); d.setUTCDate(d.getUTCDate() + n); return d.toISOString().slice(0, 10); };
const daysBetween = (from, to) => Math.round((asDate(to) - asDate(from)) / 86_400_000) + 1;
const weekday = (day) => WEEKDAYS[asDate(day).getUTCDay()];

function rangeProblem(from, to) {
  if (!from || !to) return "pick both dates";
  if (from > to) return "the first day is after the last";
  if (daysBetween(from, to) > MAX_RANGE_DAYS) return `at most ${MAX_RANGE_DAYS} days at a time`;
  return null;
}

function setRange(from, to) {
  view.from = from;
  view.to = to;
  const first = $("heatmap-from"); const last = $("heatmap-to");
  first.value = from; last.value = to;
  first.max = to; last.min = from;
  first.min = addDays(to, -(MAX_RANGE_DAYS - 1));
}

function pickRange() {
  const from = $("heatmap-from").value; const to = $("heatmap-to").value;
  const problem = rangeProblem(from, to);
  $("heatmap-range").dataset.invalid = problem ? "true" : "false";
  if (problem) { $("heatmap-note").textContent = `Range: ${problem}.`; return; }
  setRange(from, to);
  loadHeatmap();
}
$("heatmap-from").addEventListener("change", pickRange);
$("heatmap-to").addEventListener("change", pickRange);

// ------------------------------------------------------------------------------------------------ heatmap
async function loadHeatmap() {
  const request = ++view.heatRequest;
  const box = $("heatmap");
  box.dataset.state = "loading";
  const query = new URLSearchParams({ from: view.from, to: view.to, grain: "day", metric: "utilization" });
  try {
    const answer = await api(`${b(view.building)}/analytics?${query}`);
    if (request !== view.heatRequest) return; // another range or building was asked for meanwhile
    view.answer = answer;
    renderHeatmap();
  } catch (error) {
    if (request !== view.heatRequest) return;
    box.dataset.state = "error";
    $("heatmap-note").textContent = `analytics: ${error.message}`;
  }
}

function colour(value) {
  if (value > 1) return OVER_CAPACITY;
  for (let i = 1; i < STOPS.length; i += 1) {
    const [at, rgb] = STOPS[i];
    if (value <= at) {
      const [before, from] = STOPS[i - 1];
      const f = (value - before) / (at - before);
      return `rgb(${rgb.map((c, k) => Math.round(from[k] + (c - from[k]) * f)).join(", ")})`;
    }
  }
  return `rgb(${STOPS[STOPS.length - 1][1].join(", ")})`;
}

// What a cell means: the API's null and `suppressed` say different things (docs/metrics.md).
function cellOf(row, dayClosed, minGroupSize) {
  if (!row) {
    return dayClosed ? { state: "closed", text: "", title: "closed: no business hours that day" }
      : { state: "no-data", text: "", title: "no data: not rolled up (yet)" };
  }
  if (row.suppressed) {
    return { state: "suppressed", text: "", title: `hidden: fewer than ${minGroupSize} people were there (privacy)` };
  }
  if (row.value == null) return { state: "unused", text: "–", title: "not used: nobody was there in business hours" };
  const percent = Math.round(row.value * 100);
  return { state: "value", text: String(percent), title: `utilization ${percent} %`
    + (row.value > 1 ? " (more people than its capacity)" : "") };
}

function renderHeatmap() {
  const answer = view.answer;
  const box = $("heatmap");
  if (!answer) return;
  const days = [...Array(daysBetween(answer.from, answer.to)).keys()].map((i) => addDays(answer.from, i));
  // Rows: the rooms of the floor on the map, those with a capacity (utilization is measured against it; corridors,
  // stairs and lifts have none), meeting rooms and the like grouped by kind.
  const rooms = view.site.spaces.filter((s) => s.floor === view.floor && (s.capacity || 0) > 0)
    .sort((x, y) => x.kind.localeCompare(y.kind) || (x.name || x.id).localeCompare(y.name || y.id, undefined, { numeric: true }));
  const rows = new Map();
  for (const row of answer.rows) {
    if (row.scope === "space" && row.metric === "utilization") rows.set(`${row.scopeId}|${row.localDate}`, row);
  }
  const rolled = new Set(answer.windows.map((w) => w.localDate));
  const withRows = new Set(answer.rows.map((r) => r.localDate));
  const closed = new Set([...rolled].filter((day) => !withRows.has(day))); // a window with no rows: no business hours

  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  head.append(Object.assign(document.createElement("th"), { textContent: "room", className: "room" }));
  for (const day of days) {
    const th = document.createElement("th");
    th.dataset.date = day;
    th.title = `${weekday(day)} ${day}`;
    th.append(weekday(day).slice(0, 2), document.createElement("br"), day.slice(8));
    head.append(th);
  }
  const body = table.createTBody();
  for (const room of rooms) {
    const tr = body.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.className = "room";
    th.dataset.spaceId = room.id;
    th.textContent = room.name || room.id;
    th.title = `${room.name || room.id} (${room.id}, ${room.kind}, capacity ${room.capacity})`;
    tr.append(th);
    for (const day of days) {
      const row = rows.get(`${room.id}|${day}`);
      const cell = cellOf(row, closed.has(day), answer.minGroupSize);
      const td = tr.insertCell();
      td.dataset.spaceId = room.id;
      td.dataset.date = day;
      td.dataset.state = cell.state;
      if (cell.state === "value") {
        td.dataset.value = String(row.value);
        td.style.background = colour(row.value);
        if (row.value > 0.6) td.classList.add("dark");
      }
      if (cell.state === "suppressed") td.dataset.suppressed = "true";
      td.className = `${td.className} ${cell.state}`.trim();
      td.textContent = cell.text;
      td.title = `${room.name || room.id}, ${weekday(day)} ${day}: ${cell.title}`;
    }
  }
  box.replaceChildren(table);
  box.dataset.from = answer.from;
  box.dataset.to = answer.to;
  box.dataset.floorShown = view.floor; // not data-floor: that names the floor tabs
  box.dataset.state = "ready";
  $("legend-k").textContent = String(answer.minGroupSize);
  const floor = view.site.floors.find((f) => f.id === view.floor);
  $("heatmap-note").textContent = rooms.length
    ? `${rooms.length} rooms of ${floor ? floor.name || floor.id : view.floor}, ${days.length} days (${answer.timeZone}); `
      + "number = utilization in %: the mean headcount while the room was in use, against its capacity."
    : "No room of this floor has a capacity to measure utilization against.";
}

// ------------------------------------------------------------------------------------------------ typical weekday
// The building's mean headcount per local hour of one day; null where the hour is missing or hidden (suppressed).
// A day with a daylight-saving change has one hour twice: its two windows are averaged.
function hourly(answer) {
  const values = new Map();
  for (const row of answer.rows) {
    if (row.scope !== "building" || row.metric !== "mean_headcount" || row.suppressed || row.value == null) continue;
    values.set(row.localHour, [...(values.get(row.localHour) || []), row.value]);
  }
  return new Map([...values].map(([hour, list]) => [hour, list.reduce((s, v) => s + v, 0) / list.length]));
}

async function loadWeekday(today) {
  const request = ++view.weekRequest;
  const days = [today, ...[...Array(TYPICAL_WEEKS).keys()].map((w) => addDays(today, -7 * (w + 1)))];
  try {
    // one query per day: the API reads every day of a range, and only these 5 of the last 29 are needed
    const answers = await Promise.all(days.map((day) => api(`${b(view.building)}/analytics?${new URLSearchParams(
      { from: day, to: day, grain: "hour", metric: "mean_headcount" })}`)));
    if (request !== view.weekRequest) return;
    renderWeekday(today, days.slice(1), answers.map(hourly), answers[0].timeZone, answers[0].minGroupSize);
  } catch (error) {
    if (request !== view.weekRequest) return;
    $("weekday").dataset.state = "error";
    $("analytics-note").textContent = `analytics: ${error.message}`;
  }
}

function renderWeekday(today, weeks, [now, ...before], timeZone, minGroupSize) {
  const name = weekday(today);
  const typical = new Map();
  for (let hour = 0; hour < 24; hour += 1) {
    const values = before.map((week) => week.get(hour)).filter((v) => v != null); // weeks with data at this hour
    if (values.length) typical.set(hour, { mean: values.reduce((s, v) => s + v, 0) / values.length, weeks: values.length });
  }
  const withData = weeks.filter((_, i) => before[i].size > 0);
  const hours = [...new Set([...now.keys(), ...typical.keys()])].sort((x, y) => x - y);
  const shown = hours.length ? [...Array(hours[hours.length - 1] - hours[0] + 1).keys()].map((i) => hours[0] + i) : [];
  $("weekday-title").textContent = `Today against a typical ${name}`;
  const labels = shown.map((h) => `${String(h).padStart(2, "0")}:00`);
  const data = { labels, datasets: [
    { type: "bar", label: `today (${today})`, data: shown.map((h) => now.get(h) ?? null), backgroundColor: "#60a5fa" },
    { type: "line", label: `typical ${name} (${withData.length} weeks)`, data: shown.map((h) => typical.get(h)?.mean ?? null),
      borderColor: "#f59e0b", backgroundColor: "#f59e0b", spanGaps: false },
  ] };
  if (view.chart) view.chart.destroy();
  view.chart = new Chart($("chart"), { data, options: { animation: false, responsive: true,
    scales: { y: { beginAtZero: true, title: { display: true, text: "mean headcount" } } } } });

  const table = $("weekday-table");
  const body = document.createElement("tbody");
  for (const hour of shown) {
    const tr = body.insertRow();
    tr.dataset.hour = String(hour);
    const today_ = now.get(hour); const usual = typical.get(hour);
    if (today_ != null) tr.dataset.today = String(today_);
    if (usual) { tr.dataset.typical = String(usual.mean); tr.dataset.weeks = String(usual.weeks); } else tr.dataset.weeks = "0";
    for (const text of [labels[shown.indexOf(hour)], today_ != null ? today_.toFixed(1) : "–",
      usual ? usual.mean.toFixed(1) : "–", usual ? String(usual.weeks) : "0"]) {
      tr.insertCell().textContent = text;
    }
  }
  table.tBodies[0]?.remove();
  table.append(body);
  const box = $("weekday");
  box.dataset.today = today;
  box.dataset.weeks = String(withData.length);
  box.dataset.weekDates = weeks.join(",");
  box.dataset.state = "ready";
  const isoDay = asDate(today).getUTCDay() || 7;
  const open = (view.site.businessHours?.days ?? [1, 2, 3, 4, 5]).includes(isoDay);
  const note = $("analytics-note");
  note.textContent = !open ? `The building is closed on ${name}s (business hours): no occupancy to show.`
    : `Building mean headcount per hour (${timeZone}). Typical ${name}: per hour, the mean of the previous `
      + `${TYPICAL_WEEKS} ${name}s that have data for that hour; ${withData.length} of ${TYPICAL_WEEKS} had data. `
      + `Gaps: not rolled up yet, or hidden (fewer than ${minGroupSize} people).`;
  note.title = `${name}s before today: ${weeks.join(", ")}`;
}
