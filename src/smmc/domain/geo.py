"""Coordinate checks for provisioning: is a POD or concentrator where the utility serves?

Templates are typed by hand, so the usual mistakes (a lost minus sign, latitude and longitude
swapped, a decimal comma) get a hint that names the likely fix instead of a bare rejection.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "CHILE",
    "CHILE_BOXES",
    "BoundingBox",
    "CoordinateProblem",
    "ServiceArea",
    "check_coordinates",
    "parse_decimal",
]


def _check_bounds(what: str, low: float, high: float, limit: float) -> None:
    if not (-limit <= low <= high <= limit):
        raise ValueError(f"{what} bounds must satisfy -{limit} <= min <= max <= {limit}")


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """A latitude/longitude rectangle in decimal degrees (no antimeridian crossing)."""

    min_latitude: float
    max_latitude: float
    min_longitude: float
    max_longitude: float

    def __post_init__(self) -> None:
        _check_bounds("latitude", self.min_latitude, self.max_latitude, 90.0)
        _check_bounds("longitude", self.min_longitude, self.max_longitude, 180.0)

    def contains(self, latitude: float, longitude: float) -> bool:
        """True when the point lies inside or on the edge of the box."""
        return (
            self.min_latitude <= latitude <= self.max_latitude
            and self.min_longitude <= longitude <= self.max_longitude
        )


@dataclass(frozen=True, slots=True)
class ServiceArea:
    """Where installations may be: an outer box, optionally narrowed to a union of boxes.

    With no ``boxes`` the outer box is the area; otherwise a point must also fall in one of
    the boxes, which lets a long thin country reject its neighbours.
    """

    name: str
    min_latitude: float
    max_latitude: float
    min_longitude: float
    max_longitude: float
    boxes: tuple[BoundingBox, ...] = ()

    def __post_init__(self) -> None:
        _check_bounds("latitude", self.min_latitude, self.max_latitude, 90.0)
        _check_bounds("longitude", self.min_longitude, self.max_longitude, 180.0)

    def contains(self, latitude: float, longitude: float) -> bool:
        """True when the point is inside the outer box and, if any, one of the boxes."""
        if not (
            self.min_latitude <= latitude <= self.max_latitude
            and self.min_longitude <= longitude <= self.max_longitude
        ):
            return False
        return not self.boxes or any(box.contains(latitude, longitude) for box in self.boxes)


# Chile as latitude bands whose eastern edge follows the Andes border closely enough to
# reject the main towns just across it (Tacna, Uyuni, Salta, Mendoza, Bariloche, El
# Calafate, Río Gallegos, Ushuaia). Slivers of Peru, Bolivia and Argentina next to the
# border remain inside; the Antarctic territory and Sala y Gómez are not covered.
CHILE_BOXES: tuple[BoundingBox, ...] = (
    BoundingBox(-18.35, -17.40, -70.00, -69.00),  # Arica y Parinacota altiplano
    BoundingBox(-21.50, -18.35, -70.60, -68.00),  # Arica, Tarapacá
    BoundingBox(-24.50, -21.50, -70.80, -67.00),  # Antofagasta and its Puna bulge
    BoundingBox(-26.00, -24.50, -70.90, -68.20),  # southern Antofagasta
    BoundingBox(-29.00, -26.00, -71.80, -68.20),  # Atacama
    BoundingBox(-32.00, -29.00, -71.80, -69.80),  # Coquimbo
    BoundingBox(-37.00, -32.00, -73.90, -69.70),  # Valparaíso to Biobío
    BoundingBox(-39.50, -37.00, -74.00, -70.80),  # Biobío, Araucanía, Isla Mocha
    BoundingBox(-44.00, -39.50, -75.00, -71.50),  # Los Ríos, Los Lagos, Chiloé
    BoundingBox(-49.00, -44.00, -76.00, -71.20),  # Aysén
    BoundingBox(-50.80, -49.00, -76.00, -72.90),  # Southern Ice Field, Patagonian islands
    BoundingBox(-52.00, -50.80, -76.00, -71.60),  # Última Esperanza
    BoundingBox(-54.90, -52.00, -76.00, -68.40),  # Magallanes, Chilean Tierra del Fuego
    BoundingBox(-56.60, -54.90, -72.00, -66.20),  # south of the Beagle to Diego Ramírez
    BoundingBox(-34.00, -33.40, -81.00, -78.60),  # Juan Fernández
    BoundingBox(-26.50, -26.20, -80.20, -79.80),  # Desventuradas (San Félix, San Ambrosio)
    BoundingBox(-27.30, -27.00, -109.50, -109.20),  # Easter Island (Rapa Nui)
)

CHILE = ServiceArea(
    name="Chile",
    min_latitude=min(box.min_latitude for box in CHILE_BOXES),
    max_latitude=max(box.max_latitude for box in CHILE_BOXES),
    min_longitude=min(box.min_longitude for box in CHILE_BOXES),
    max_longitude=max(box.max_longitude for box in CHILE_BOXES),
    boxes=CHILE_BOXES,
)


@dataclass(frozen=True, slots=True)
class CoordinateProblem:
    """Why a coordinate pair was refused, what to do, and the corrected pair when evident."""

    reason: str
    hint: str
    suggestion: tuple[float, float] | None = None


# Candidate corrections, simplest first: (swap, flip latitude sign, flip longitude sign).
# Sign flips apply after the swap, i.e. to the values as they end up.
_FIXES: tuple[tuple[bool, bool, bool], ...] = (
    (False, True, False),
    (False, False, True),
    (True, False, False),
    (False, True, True),
    (True, True, False),
    (True, False, True),
    (True, True, True),
)


def _sign_wording(axis: str, value: float) -> str:
    return f"the {axis} is missing its minus sign" if value > 0 else f"the {axis} has a stray minus"


def _likely_fix(
    latitude: float, longitude: float, area: ServiceArea
) -> tuple[str, tuple[float, float]] | None:
    """The simplest correction that lands the point in the area: its hint and the pair."""
    for swap, flip_lat, flip_lon in _FIXES:
        lat, lon = (longitude, latitude) if swap else (latitude, longitude)
        if (flip_lat and lat == 0) or (flip_lon and lon == 0):
            continue
        fixed = (-lat if flip_lat else lat), (-lon if flip_lon else lon)
        if area.contains(*fixed):
            mistakes = ["latitude and longitude are swapped"] if swap else []
            if flip_lat:
                mistakes.append(_sign_wording("latitude", lat))
            if flip_lon:
                mistakes.append(_sign_wording("longitude", lon))
            wording = " and ".join(mistakes)
            return f"probably {wording}: {_format_pair(*fixed)} lies inside {area.name}", fixed
    return None


def _format_pair(latitude: float, longitude: float) -> str:
    return f"({latitude}, {longitude})"


def check_coordinates(
    lat: float, lon: float, area: ServiceArea = CHILE
) -> CoordinateProblem | None:
    """None when the point is valid and inside ``area``, else the problem and a hint."""
    pair = _format_pair(lat, lon)
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return CoordinateProblem(
            reason=f"coordinates {pair} are not finite numbers",
            hint="give latitude and longitude in decimal degrees",
        )
    if area.contains(lat, lon):
        return None
    fix = _likely_fix(lat, lon, area)
    if abs(lat) > 90 or abs(lon) > 180:
        reason = (
            f"coordinates {pair} are out of range "
            f"(latitude must lie in -90..90, longitude in -180..180)"
        )
        if fix is not None:
            return CoordinateProblem(reason=reason, hint=fix[0], suggestion=fix[1])
        return CoordinateProblem(
            reason=reason,
            hint="use decimal degrees; a lost decimal point or a degrees-minutes value "
            "gives numbers this large",
        )
    reason = f"coordinates {pair} lie outside the service area {area.name}"
    if fix is not None:
        return CoordinateProblem(reason=reason, hint=fix[0], suggestion=fix[1])
    if lat == 0 and lon == 0:
        hint = "(0, 0) is the usual placeholder for missing coordinates: enter the real ones"
    else:
        hint = (
            f"check the source of the coordinates: {area.name} spans latitude "
            f"{area.min_latitude}..{area.max_latitude} and longitude "
            f"{area.min_longitude}..{area.max_longitude}"
        )
    return CoordinateProblem(reason=reason, hint=hint)


# One optional sign (ASCII or the Unicode minus spreadsheets produce), digits, and at most
# one decimal separator that is either a point or a comma.
_DECIMAL = re.compile(r"([+\-\u2212]?)([0-9]+)(?:[.,]([0-9]+))?")


def parse_decimal(text: str) -> float:
    """Parse a coordinate written with a decimal point or a decimal comma ("-33,4372").

    Thousands separators, exponents, several separators and anything else are refused: a
    value such as "1,234.5" is ambiguous in a coordinate column. A single comma is always
    read as the decimal separator.
    """
    match = _DECIMAL.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"not a decimal number: {text!r} (expected e.g. -33.4372 or -33,4372, "
            f"without thousands separators)"
        )
    sign, whole, fraction = match.groups()
    value = float(f"{whole}.{fraction or '0'}")
    return -value if sign in ("-", "\u2212") else value
