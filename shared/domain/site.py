"""Site model `site/v1`: building -> floors -> spaces, beacons and the navigation graph.

Aligned with IMDF (unit categories, levels with ordinals) so an IMDF venue can be imported without a redesign.
Coordinates are building metres in one plane shared by all floors.
"""
from __future__ import annotations

import enum
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from shared.domain import geometry
from shared.domain.beacon_ids import normalize_beacon_id
from shared.domain.errors import ContractViolation, FieldError, validate_model
from shared.domain.tenancy import ID_MAX_LENGTH, ID_PATTERN

SITE_SCHEMA: Final = "site/v1"
MAX_FLOORS = 200
MAX_SPACES = 20_000
MAX_BEACONS = 20_000
MAX_NAV_NODES = 100_000
MAX_POLYGON_VERTICES = 2_000
COORDINATE_LIMIT_M = 100_000.0

# The path id pattern (shared/domain/tenancy.py): every building, floor and space id can be named in a URL.
Identifier = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
Coordinate = Annotated[float, Field(ge=-COORDINATE_LIMIT_M, le=COORDINATE_LIMIT_M, allow_inf_nan=False)]


class SpaceKind(str, enum.Enum):
    """IMDF unit categories (IMDF 1.0, unit.category)."""

    auditorium = "auditorium"
    brick = "brick"
    classroom = "classroom"
    column = "column"
    concrete = "concrete"
    conferenceroom = "conferenceroom"
    drywall = "drywall"
    elevator = "elevator"
    escalator = "escalator"
    fieldofplay = "fieldofplay"
    firstaid = "firstaid"
    fitnessroom = "fitnessroom"
    foodservice = "foodservice"
    footbridge = "footbridge"
    glass = "glass"
    huddleroom = "huddleroom"
    kitchen = "kitchen"
    laboratory = "laboratory"
    library = "library"
    lobby = "lobby"
    lounge = "lounge"
    mailroom = "mailroom"
    mothersroom = "mothersroom"
    movietheater = "movietheater"
    movingwalkway = "movingwalkway"
    nonpublic = "nonpublic"
    office = "office"
    opentobelow = "opentobelow"
    parking = "parking"
    phoneroom = "phoneroom"
    platform = "platform"
    privatelounge = "privatelounge"
    ramp = "ramp"
    recreation = "recreation"
    restroom = "restroom"
    restroom_family = "restroom.family"
    restroom_female = "restroom.female"
    restroom_male = "restroom.male"
    restroom_transgender = "restroom.transgender"
    restroom_unisex = "restroom.unisex"
    road = "road"
    room = "room"
    serverroom = "serverroom"
    shower = "shower"
    smokingarea = "smokingarea"
    stairs = "stairs"
    steps = "steps"
    storage = "storage"
    structure = "structure"
    terrace = "terrace"
    theater = "theater"
    unenclosedarea = "unenclosedarea"
    unspecified = "unspecified"
    vegetation = "vegetation"
    waitingroom = "waitingroom"
    walkway = "walkway"
    walkway_island = "walkway.island"
    wheelchairramp = "wheelchairramp"


class NavNodeKind(str, enum.Enum):
    door = "door"
    corridor = "corridor"
    stairs = "stairs"
    elevator = "elevator"
    entrance = "entrance"


class NavEdgeKind(str, enum.Enum):
    walk = "walk"
    stairs = "stairs"
    elevator = "elevator"


def _check_polygon(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if geometry.has_repeated_vertices(points):
        raise PydanticCustomError("polygon_repeated_vertex", "polygon repeats a vertex")
    crossing = geometry.self_intersection(points)
    if crossing is not None:
        raise PydanticCustomError(
            "polygon_self_intersecting",
            "polygon is self-intersecting: edge {a} crosses edge {b}",
            {"a": crossing[0], "b": crossing[1]},
        )
    if abs(geometry.polygon_area(points)) < 1e-6:
        raise PydanticCustomError("polygon_degenerate", "polygon has no area")
    return points


Polygon = Annotated[
    list[tuple[Coordinate, Coordinate]],
    Field(min_length=3, max_length=MAX_POLYGON_VERTICES),
    AfterValidator(_check_polygon),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


LanguageTag = Annotated[str, Field(min_length=2, max_length=35, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")]
# IMDF LABELS: one name per language (BCP 47 tag -> name), e.g. {"en": "Kitchen", "de": "Küche"}.
Labels = Annotated[dict[LanguageTag, Annotated[str, Field(min_length=1, max_length=128)]], Field(max_length=16)]
Category = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._\-]*$")]
Holes = Annotated[list[Polygon], Field(default_factory=list, max_length=64)]
SpaceRefs = Annotated[list[Identifier], Field(default_factory=list, max_length=16)]


class GeoOrigin(_Strict):
    """Where building metres are anchored on Earth: (0, 0) is this WGS84 point (an IMDF venue's display point),
    x runs east and y north (azimuthal equidistant projection around it, so distances hold in the building)."""

    latitude: float = Field(ge=-90, le=90, allow_inf_nan=False)
    longitude: float = Field(ge=-180, le=180, allow_inf_nan=False)


class ImdfIdentity(_Strict):
    """The IMDF features a building was imported from (kept so an export gives the same archive back)."""

    venue_id: Identifier = Field(alias="venueId")
    building_id: Identifier | None = Field(default=None, alias="buildingId")
    address_id: Identifier | None = Field(default=None, alias="addressId")
    venue_category: Category = Field(default="businesscampus", alias="venueCategory")
    address: dict[str, str | None] | None = Field(default=None, max_length=16, description="IMDF address properties")


class Floor(_Strict):
    id: Identifier
    name: str = Field(default="", max_length=128)
    short_name: str = Field(default="", alias="shortName", max_length=32)
    labels: Labels = Field(default_factory=dict, description="the floor's name per language")
    ordinal: int = Field(ge=-50, le=200, description="IMDF level ordinal: 0 ground, negative below ground")
    elevation: float = Field(default=0.0, ge=-500, le=2000, description="metres above the ground floor")
    outline: Polygon = Field(description="the floor's footprint; beacons and spaces must lie inside it")


def _known_space_kind(value: object) -> object:
    if isinstance(value, str) and value not in _SPACE_KINDS:
        raise PydanticCustomError(
            "space_kind",
            "unknown space kind '{kind}': use an IMDF unit category such as conferenceroom, office, kitchen, "
            "restroom, walkway, elevator or stairs",
            {"kind": value[:64]},
        )
    return value


_SPACE_KINDS = {kind.value for kind in SpaceKind}


class SpacePart(_Strict):
    polygon: Polygon
    holes: Holes


class Space(_Strict):
    id: Identifier
    name: str = Field(min_length=1, max_length=128)
    kind: Annotated[SpaceKind, BeforeValidator(_known_space_kind)]
    floor: Identifier
    polygon: Polygon = Field(description="the outer ring (of the largest part, for a unit of several parts)")
    holes: Holes = Field(description="rings cut out of `polygon` (a courtyard, a shaft)")
    parts: list[SpacePart] = Field(default_factory=list, max_length=64,
                                   description="further parts of a space drawn as several polygons (IMDF MultiPolygon)")
    labels: Labels = Field(default_factory=dict, description="the space's name per language")
    capacity: int = Field(default=0, ge=0, le=100_000)
    amenities: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=64)
    bookable: bool = False


class Beacon(_Strict):
    id: str = Field(max_length=80, description="iBeacon uuid:major:minor or Eddystone namespace:instance")
    x: Coordinate
    y: Coordinate
    floor: Identifier
    measured_power: int = Field(alias="measuredPower", ge=-100, le=0, description="RSSI at 1 m, dBm")

    @field_validator("id")
    @classmethod
    def _normalize_id(cls, value: str) -> str:
        try:
            return normalize_beacon_id(value)
        except ValueError as exc:
            raise PydanticCustomError("beacon_id", str(exc)) from None


class Door(_Strict):
    """An opening in a space's boundary (IMDF opening): where people pass, and no wall for the signal model."""

    id: Identifier
    floor: Identifier
    segment: list[tuple[Coordinate, Coordinate]] = Field(min_length=2, max_length=64,
                                                         description="the opening along the boundary (a polyline)")
    category: Category = Field(default="pedestrian", description="IMDF opening category")
    accessible: bool = True
    name: str | None = Field(default=None, max_length=128)
    spaces: SpaceRefs = Field(description="the spaces it joins (filled in by the importer or the generator)")


class Amenity(_Strict):
    """A point of interest inside a space (IMDF amenity): a printer, a defibrillator, a water fountain."""

    id: Identifier
    floor: Identifier
    x: Coordinate
    y: Coordinate
    category: Category
    name: str | None = Field(default=None, max_length=128)
    spaces: SpaceRefs


class Obstacle(_Strict):
    """Something fixed that people walk around (IMDF fixture): furniture, a counter, a wall section."""

    id: Identifier
    floor: Identifier
    polygon: Polygon
    holes: Holes
    category: Category = "unspecified"
    name: str | None = Field(default=None, max_length=128)


class ConnectorKind(str, enum.Enum):
    elevator = "elevator"
    stairs = "stairs"
    escalator = "escalator"
    ramp = "ramp"


class VerticalConnector(_Strict):
    """Spaces on different floors that one elevator, staircase, escalator or ramp joins (IMDF relationship,
    or elevator/stairs units stacked over each other). Elevators and ramps are step-free, stairs and escalators
    not, unless `accessible` says otherwise."""

    id: Identifier
    kind: ConnectorKind
    spaces: list[Identifier] = Field(min_length=2, max_length=MAX_FLOORS)
    accessible: bool | None = None

    @property
    def step_free(self) -> bool:
        if self.accessible is not None:
            return self.accessible
        return self.kind in (ConnectorKind.elevator, ConnectorKind.ramp)


class NavNode(_Strict):
    id: Identifier
    x: Coordinate
    y: Coordinate
    floor: Identifier
    kind: NavNodeKind = NavNodeKind.corridor
    space_id: Identifier | None = Field(default=None, alias="spaceId", description="the space a door opens into")
    name: str | None = Field(default=None, max_length=128)


class NavEdge(_Strict):
    from_node: Identifier = Field(alias="from")
    to_node: Identifier = Field(alias="to")
    kind: NavEdgeKind = NavEdgeKind.walk
    accessible: bool = True


class NavigationGraph(_Strict):
    nodes: list[NavNode] = Field(default_factory=list, max_length=MAX_NAV_NODES)
    edges: list[NavEdge] = Field(default_factory=list, max_length=4 * MAX_NAV_NODES)
    generated: bool = Field(default=False, description="generated from the geometry (true) or given by hand")
    geometry_hash: str | None = Field(default=None, alias="geometryHash", max_length=64,
                                      description="the geometry a generated graph was made from")


class BusinessHours(_Strict):
    start: str = Field(default="08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(default="18:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
    days: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5], min_length=1, max_length=7, description="ISO weekdays, 1 = Monday"
    )

    @model_validator(mode="after")
    def _start_before_end(self) -> BusinessHours:
        if self.start >= self.end:
            raise PydanticCustomError("business_hours", "business hours must start before they end")
        return self


class SiteModel(_Strict):
    """One building: what positioning, live state, wayfinding and analytics all read."""

    schema_: Literal["site/v1"] = Field(default=SITE_SCHEMA, alias="schema")
    building_id: Identifier = Field(alias="buildingId")
    name: str = Field(min_length=1, max_length=128)
    time_zone: str = Field(default="UTC", alias="timeZone", max_length=64, description="IANA time zone")
    business_hours: BusinessHours = Field(default_factory=BusinessHours, alias="businessHours")
    path_loss_exponent: float | None = Field(default=None, alias="pathLossExponent", ge=1.0, le=6.0)
    labels: Labels = Field(default_factory=dict, description="the building's name per language")
    origin: GeoOrigin | None = Field(default=None, description="where building metres sit on Earth")
    imdf: ImdfIdentity | None = None
    floors: list[Floor] = Field(min_length=1, max_length=MAX_FLOORS)
    spaces: list[Space] = Field(default_factory=list, max_length=MAX_SPACES)
    doors: list[Door] = Field(default_factory=list, max_length=MAX_SPACES * 4)
    amenities: list[Amenity] = Field(default_factory=list, max_length=MAX_SPACES)
    obstacles: list[Obstacle] = Field(default_factory=list, max_length=MAX_SPACES)
    connectors: list[VerticalConnector] = Field(default_factory=list, max_length=MAX_SPACES)
    beacons: list[Beacon] = Field(default_factory=list, max_length=MAX_BEACONS)
    navigation: NavigationGraph = Field(default_factory=NavigationGraph)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError("time_zone", "unknown IANA time zone {zone}", {"zone": value}) from None
        return value

    def floor_by_id(self) -> dict[str, Floor]:
        return {f.id: f for f in self.floors}


def parse_site_model(data: object) -> SiteModel:
    """Validate a site model (parsed JSON) field by field, then its cross-references.

    Raises ContractViolation listing every offending field.
    """
    site = validate_model(SiteModel, data)
    problems = [FieldError(path, message) for path, message in site_problems(site)]
    if problems:
        raise ContractViolation(problems)
    return site


def site_problems(site: SiteModel) -> Iterator[tuple[str, str]]:
    """Yield (field path, message) for every inconsistency between the parts of a site model."""
    yield from _duplicates("floors", [f.id for f in site.floors])
    yield from _duplicates("spaces", [s.id for s in site.spaces])
    yield from _duplicates("beacons", [b.id for b in site.beacons])
    yield from _duplicates("navigation.nodes", [n.id for n in site.navigation.nodes])
    yield from _duplicates("doors", [d.id for d in site.doors])
    yield from _duplicates("amenities", [a.id for a in site.amenities])
    yield from _duplicates("obstacles", [o.id for o in site.obstacles])
    yield from _duplicates("connectors", [c.id for c in site.connectors])
    floors = site.floor_by_id()
    ordinals: dict[int, str] = {}
    for i, floor in enumerate(site.floors):
        if floor.ordinal in ordinals:
            yield (f"floors[{i}].ordinal", f"ordinal {floor.ordinal} is also used by floor '{ordinals[floor.ordinal]}'")
        ordinals.setdefault(floor.ordinal, floor.id)
    for i, space in enumerate(site.spaces):
        space_floor = floors.get(space.floor)
        if space_floor is None:
            yield (f"spaces[{i}].floor", f"unknown floor '{space.floor}'")
        elif not geometry.point_in_polygon(geometry.polygon_centroid(space.polygon), space_floor.outline):
            yield (f"spaces[{i}].polygon", f"space '{space.id}' lies outside the outline of floor '{space_floor.id}'")
    for i, beacon in enumerate(site.beacons):
        beacon_floor = floors.get(beacon.floor)
        if beacon_floor is None:
            yield (f"beacons[{i}].floor", f"unknown floor '{beacon.floor}'")
        elif not geometry.point_in_polygon((beacon.x, beacon.y), beacon_floor.outline):
            on_other = [f.id for f in site.floors if geometry.point_in_polygon((beacon.x, beacon.y), f.outline)]
            where = f" (it is inside floor {on_other[0]!r})" if on_other else " and every other floor"
            yield (f"beacons[{i}]",
                   f"beacon '{beacon.id}' at ({beacon.x}, {beacon.y}) is outside floor '{beacon_floor.id}'{where}")
    yield from _feature_problems(site, floors)
    yield from _navigation_problems(site, floors)


def _feature_problems(site: SiteModel, floors: dict[str, Floor]) -> Iterator[tuple[str, str]]:
    spaces = {s.id: s for s in site.spaces}
    located: list[tuple[str, Sequence[Door | Amenity | Obstacle]]] = [
        ("doors", site.doors), ("amenities", site.amenities), ("obstacles", site.obstacles)]
    for path, features in located:
        for i, feature in enumerate(features):
            if feature.floor not in floors:
                yield (f"{path}[{i}].floor", f"unknown floor '{feature.floor}'")
            for ref in getattr(feature, "spaces", ()):
                if ref not in spaces:
                    yield (f"{path}[{i}].spaces", f"unknown space '{ref}'")
    for i, connector in enumerate(site.connectors):
        on_floor: dict[str, str] = {}
        for ref in connector.spaces:
            space = spaces.get(ref)
            if space is None:
                yield (f"connectors[{i}].spaces", f"unknown space '{ref}'")
            elif space.floor in on_floor:
                yield (f"connectors[{i}].spaces",
                       f"spaces '{on_floor[space.floor]}' and '{ref}' are on the same floor: a connector joins floors")
            else:
                on_floor[space.floor] = ref


def _duplicates(path: str, ids: list[str]) -> Iterator[tuple[str, str]]:
    seen: set[str] = set()
    for i, ident in enumerate(ids):
        if ident in seen:
            yield (f"{path}[{i}].id", f"duplicate id '{ident}'")
        seen.add(ident)


def _navigation_problems(site: SiteModel, floors: dict[str, Floor]) -> Iterator[tuple[str, str]]:
    nodes = {n.id: n for n in site.navigation.nodes}
    space_ids = {s.id for s in site.spaces}
    for i, node in enumerate(site.navigation.nodes):
        if node.floor not in floors:
            yield (f"navigation.nodes[{i}].floor", f"unknown floor '{node.floor}'")
        if node.space_id is not None and node.space_id not in space_ids:
            yield (f"navigation.nodes[{i}].spaceId", f"unknown space '{node.space_id}'")
    adjacency: dict[str, set[str]] = defaultdict(set)
    for i, edge in enumerate(site.navigation.edges):
        a, b = nodes.get(edge.from_node), nodes.get(edge.to_node)
        if a is None:
            yield (f"navigation.edges[{i}].from", f"unknown node '{edge.from_node}'")
        if b is None:
            yield (f"navigation.edges[{i}].to", f"unknown node '{edge.to_node}'")
        if a is None or b is None:
            continue
        if edge.from_node == edge.to_node:
            yield (f"navigation.edges[{i}]", "an edge must join two different nodes")
        if edge.kind is NavEdgeKind.walk and a.floor != b.floor:
            yield (f"navigation.edges[{i}].kind", "a walk edge joins nodes on different floors: use stairs or elevator")
        if edge.kind is NavEdgeKind.stairs and edge.accessible:
            yield (f"navigation.edges[{i}].accessible", "stairs cannot be accessible")
        adjacency[a.id].add(b.id)
        adjacency[b.id].add(a.id)
    # A generated graph may have parts the geometry does not join (they are reported as unreachable spaces);
    # a hand-written one must be connected.
    if not site.navigation.generated and len(nodes) > 1 and len(nodes) == len(site.navigation.nodes):
        start = next(iter(nodes))
        reached = {start}
        queue = deque([start])
        while queue:
            for neighbour in adjacency[queue.popleft()]:
                if neighbour not in reached:
                    reached.add(neighbour)
                    queue.append(neighbour)
        if len(reached) < len(nodes):
            cut_off = sorted(set(nodes) - reached)
            shown = ", ".join(cut_off[:5]) + (f" and {len(cut_off) - 5} more" if len(cut_off) > 5 else "")
            yield ("navigation", f"navigation graph is disconnected: {shown} cannot be reached from '{start}'")


def site_json_schema() -> dict[str, Any]:
    """JSON Schema of the `site/v1` model, as published in docs/schemas."""
    schema = SiteModel.model_json_schema(by_alias=True, mode="validation")
    schema["$id"] = "https://spaceflow.dev/schemas/site-v1.json"
    schema["title"] = "site/v1"
    return schema
