"""What each space kind (IMDF unit category) means to spaceflow: the one place that says it.

Positioning, navigation, live state, queries and analytics all read these sets; none keeps its own list.
Values are `SpaceKind` values (plain strings, so positioning's plain specs can use them too).
"""
from __future__ import annotations

from typing import Final

# Nobody can stand in these: the positioning grid leaves them out, navigation walks around them.
NOT_OCCUPIABLE: Final = frozenset({"column", "structure", "opentobelow", "vegetation", "road", "brick", "concrete",
                                   "drywall", "glass"})
# Where people change floors.
VERTICAL: Final = frozenset({"stairs", "elevator", "escalator", "steps"})
# Open areas whose outline is no wall for the signal model (or of unknown construction).
OPEN: Final = frozenset({"walkway", "walkway.island", "lobby", "unenclosedarea", "unspecified", "opentobelow",
                         "footbridge", "movingwalkway", "platform", "terrace", "fieldofplay", "parking", "road",
                         "ramp", "wheelchairramp", "vegetation", "steps"})
# Walked through rather than stayed in: the tracker weighs them down for a phone that is still, and the
# navigation generator lays paths through them (doors lead from rooms into them).
PASSAGES: Final = frozenset({"walkway", "walkway.island", "lobby", "stairs", "elevator", "escalator", "steps",
                             "ramp"})
WALKABLE: Final = frozenset({"walkway", "lobby", "unenclosedarea", "footbridge", "movingwalkway", "platform",
                             "ramp", "wheelchairramp", "waitingroom"})
# Spaces that take people to other floors: the navigation generator joins those stacked over each other on
# consecutive floors (elevators ride, stairs and escalators climb). "steps" stay on one floor.
FLOOR_CHANGERS: Final = frozenset({"elevator", "stairs", "escalator"})
# Meeting rooms: free-rooms searches them by default; analytics judges their right-sizing.
MEETING_ROOMS: Final = frozenset({"conferenceroom", "huddleroom"})
# Amenity searches: the word a person asks for -> the kinds that answer it.
AMENITY_SEARCH: Final[dict[str, frozenset[str]]] = {
    "kitchen": frozenset({"kitchen", "foodservice"}),
    "restroom": frozenset({"restroom", "restroom.family", "restroom.female", "restroom.male", "restroom.transgender",
                           "restroom.unisex"}),
    "firstaid": frozenset({"firstaid"}),
    "mothersroom": frozenset({"mothersroom"}),
    "lounge": frozenset({"lounge", "privatelounge"}),
}
