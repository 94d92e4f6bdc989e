// Live updates: GET .../stream (server-sent events) read with fetch, since EventSource cannot send the credential's
// header; when the stream is not there (not 200 text/event-stream) or ends, poll GET .../spaces every 2 s.
import { allSpaces, authHeaders, b } from "./api.js";

export const POLL_MS = 2000;

export function follow(building, floor, onSpaces, onMode) {
  const controller = new AbortController();
  let timer = null;
  let stopped = false;

  async function poll() {
    if (stopped) return;
    try { onSpaces(await allSpaces(building, floor, { signal: controller.signal })); } catch (e) {
      if (e.name === "AbortError") return;
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }
  function startPolling() { if (!stopped) { onMode("polling"); poll(); } }

  async function stream() {
    let response;
    try {
      response = await fetch(`${b(building)}/stream?floor=${encodeURIComponent(floor)}`, {
        headers: { ...authHeaders(), accept: "text/event-stream" }, signal: controller.signal });
    } catch (e) { if (e.name !== "AbortError") startPolling(); return; }
    const type = response.headers.get("content-type") || "";
    if (response.status !== 200 || !type.startsWith("text/event-stream") || !response.body) {
      try { await response.body?.cancel(); } catch { /* closed */ }
      startPolling();
      return;
    }
    onMode("stream");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
          if (data) await onEvent(data);
        }
      }
    } catch (e) { if (e.name === "AbortError") return; }
    startPolling(); // the stream ended: keep the map live anyway
  }

  // An event may carry spaces (a list, {items}, or one space) or only say that something changed: then re-read.
  async function onEvent(data) {
    let parsed = null;
    try { parsed = JSON.parse(data); } catch { /* not JSON: a change notice */ }
    const items = Array.isArray(parsed) ? parsed : parsed && Array.isArray(parsed.items) ? parsed.items
      : parsed && parsed.id && parsed.status ? [parsed] : null;
    if (items && items.every((s) => s && s.id && s.status)) { onSpaces(items, { partial: true }); return; }
    try { onSpaces(await allSpaces(building, floor, { signal: controller.signal })); } catch { /* next event */ }
  }

  stream();
  return () => { stopped = true; clearTimeout(timer); controller.abort(); };
}
