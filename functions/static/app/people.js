// The opt-in people layer: GET .../people lists everyone who shares and was last heard in the building, each at
// the level they chose. People sharing their room are drawn in it on its floor; those sharing only the floor or
// only the building are listed, never placed. The API audits every person listed, so the layer is off until it is
// turned on and refreshes slowly.
import { ApiError, api, b, listOf } from "./api.js";

const L = window.L;
export const PEOPLE_REFRESH_MS = 30000;
const RING_M = 1.2; // people in one room sit on a small ring around its centre, so every marker can be hovered

// Each one as a short text at the precision they allow.
function whereText(person, site) {
  const floorName = (id) => site.floors.find((f) => f.id === id)?.name || id;
  if (person.spaceId) return `${site.spaces.find((s) => s.id === person.spaceId)?.name || person.spaceId}, ${floorName(person.floor)}`;
  if (person.floor) return `${floorName(person.floor)} (room not shared)`;
  return "in the building (floor not shared)";
}

export class PeopleLayer {
  constructor(map, renderer, listBox) {
    this.layer = L.layerGroup();
    this.map = map;
    this.renderer = renderer;
    this.listBox = listBox;
    this.timer = null;
    this.generation = 0;
  }

  // Shows the building's people for `view` ({building, site, floor, roomCentre(spaceId) -> LatLng | null}) and
  // keeps them fresh; onRefused(message) when the credential may not look people up (a read key).
  show(view, onRefused) {
    this.hide();
    const generation = this.generation;
    this.layer.addTo(this.map);
    const refresh = async () => {
      try {
        const people = listOf(await api(`${b(view.building)}/people`));
        if (generation !== this.generation) return;
        this.draw(people, view);
      } catch (error) {
        if (generation !== this.generation) return;
        if (error instanceof ApiError && error.status === 403) {
          this.hide();
          onRefused("people need a key with the people scope, or signing in as a person");
          return;
        }
        this.listBox.textContent = `people: ${error.message}`;
      }
      if (generation === this.generation) this.timer = setTimeout(refresh, PEOPLE_REFRESH_MS);
    };
    refresh();
  }

  hide() {
    this.generation += 1;
    clearTimeout(this.timer);
    this.layer.clearLayers();
    this.layer.remove();
    this.listBox.replaceChildren();
  }

  draw(people, view) {
    this.layer.clearLayers();
    const inRoom = new Map();
    for (const person of people) {
      if (!person.spaceId || person.floor !== view.floor) continue;
      inRoom.set(person.spaceId, [...(inRoom.get(person.spaceId) || []), person]);
    }
    for (const [spaceId, here] of inRoom) {
      const centre = view.roomCentre(spaceId);
      if (!centre) continue;
      here.forEach((person, n) => {
        const angle = (2 * Math.PI * n) / here.length;
        const offset = here.length > 1 ? RING_M : 0;
        const marker = L.circleMarker(L.latLng(centre.lat + offset * Math.sin(angle), centre.lng + offset * Math.cos(angle)), {
          renderer: this.renderer, radius: 6, weight: 2, color: "#7c3aed", fillColor: "#c4b5fd", fillOpacity: 1 })
          .bindTooltip(`${person.userId}: ${whereText(person, view.site)}, seen ${new Date(person.lastSeen).toLocaleTimeString()}`)
          .addTo(this.layer);
        const element = marker.getElement();
        element?.setAttribute("data-person", person.userId);
        element?.setAttribute("data-in-space", spaceId);
      });
    }
    const list = document.createElement("ul");
    list.id = "people-list";
    for (const person of people) {
      const item = document.createElement("li");
      item.dataset.person = person.userId;
      item.dataset.level = person.level;
      item.textContent = `${person.userId}: ${whereText(person, view.site)}`;
      list.append(item);
    }
    const heading = document.createElement("h3");
    heading.textContent = `People sharing where they are (${people.length})`;
    this.listBox.replaceChildren(heading, people.length ? list
      : Object.assign(document.createElement("p"), { className: "muted", textContent: "nobody who shares is here now" }));
  }
}
