"""Coordinate checks: Chile as a union of boxes, hints for the usual typing mistakes."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from smmc.domain.geo import (
    CHILE,
    CHILE_BOXES,
    BoundingBox,
    CoordinateProblem,
    ServiceArea,
    check_coordinates,
    parse_decimal,
)

SANTIAGO = (-33.4489, -70.6693)

CHILEAN_PLACES = {
    "Arica": (-18.4783, -70.3126),
    "Visviri": (-17.5950, -69.4783),
    "Iquique": (-20.2307, -70.1357),
    "Ollagüe": (-21.2239, -68.2536),
    "Calama": (-22.4544, -68.9294),
    "San Pedro de Atacama": (-22.9087, -68.1997),
    "Antofagasta": (-23.6509, -70.3975),
    "Copiapó": (-27.3668, -70.3314),
    "La Serena": (-29.9027, -71.2519),
    "Valparaíso": (-33.0472, -71.6127),
    "Santiago": SANTIAGO,
    "Chillán": (-36.6066, -72.1034),
    "Concepción": (-36.8201, -73.0444),
    "Lonquimay": (-38.4500, -71.3700),
    "Temuco": (-38.7359, -72.5904),
    "Puerto Montt": (-41.4693, -72.9424),
    "Castro (Chiloé)": (-42.4800, -73.7600),
    "Futaleufú": (-43.1850, -71.8670),
    "Coyhaique": (-45.5752, -72.0662),
    "Chile Chico": (-46.5400, -71.7200),
    "Villa O'Higgins": (-48.4680, -72.5600),
    "Puerto Natales": (-51.7300, -72.5000),
    "Punta Arenas": (-53.1638, -70.9171),
    "Porvenir": (-53.2955, -70.3688),
    "Puerto Williams": (-54.9333, -67.6167),
    "Cabo de Hornos": (-55.9800, -67.2700),
    "Robinson Crusoe (Juan Fernández)": (-33.6383, -78.8313),
    "Alejandro Selkirk": (-33.7700, -80.7800),
    "Hanga Roa (Easter Island)": (-27.1500, -109.4333),
}

FOREIGN_PLACES = {
    "Milan (seed placeholder)": (45.46373, 9.1911),
    "seed placeholder 33.12, 124.54": (33.12, 124.54),
    "Tacna, Peru": (-18.0146, -70.2536),
    "La Paz, Bolivia": (-16.5000, -68.1500),
    "Oruro, Bolivia": (-17.9700, -67.1100),
    "Uyuni, Bolivia": (-20.4600, -66.8200),
    "Santa Cruz, Bolivia": (-17.7833, -63.1821),
    "Salta, Argentina": (-24.7821, -65.4232),
    "Mendoza, Argentina": (-32.8895, -68.8458),
    "Buenos Aires, Argentina": (-34.6037, -58.3816),
    "Chos Malal, Argentina": (-37.3781, -70.2700),
    "Bariloche, Argentina": (-41.1335, -71.3103),
    "Esquel, Argentina": (-42.9110, -71.3190),
    "El Calafate, Argentina": (-50.3379, -72.2648),
    "Río Gallegos, Argentina": (-51.6230, -69.2168),
    "Ushuaia, Argentina": (-54.8019, -68.3030),
    "Río Grande, Argentina": (-53.7877, -67.7095),
}


@pytest.mark.parametrize("place", sorted(CHILEAN_PLACES))
def test_chilean_places_are_inside(place: str) -> None:
    lat, lon = CHILEAN_PLACES[place]
    assert CHILE.contains(lat, lon)
    assert check_coordinates(lat, lon, CHILE) is None


@pytest.mark.parametrize("place", sorted(FOREIGN_PLACES))
def test_foreign_places_are_outside(place: str) -> None:
    lat, lon = FOREIGN_PLACES[place]
    assert not CHILE.contains(lat, lon)
    problem = check_coordinates(lat, lon, CHILE)
    assert problem is not None
    assert "outside the service area Chile" in problem.reason


@pytest.mark.parametrize("pair", [(45.46373, 9.1911), (33.12, 124.54)])
def test_seed_placeholders_get_no_false_fix(pair: tuple[float, float]) -> None:
    problem = check_coordinates(*pair, CHILE)
    assert problem is not None
    assert problem.suggestion is None
    assert str(pair[0]) in problem.reason
    assert "-56.6..-17.4" in problem.hint


def test_missing_minus_on_latitude() -> None:
    problem = check_coordinates(33.4489, -70.6693, CHILE)
    assert problem is not None
    assert "latitude is missing its minus sign" in problem.hint
    assert problem.suggestion == SANTIAGO


def test_missing_minus_on_longitude() -> None:
    problem = check_coordinates(-33.4489, 70.6693, CHILE)
    assert problem is not None
    assert "longitude is missing its minus sign" in problem.hint
    assert problem.suggestion == SANTIAGO


def test_missing_both_minus_signs() -> None:
    problem = check_coordinates(33.4489, 70.6693, CHILE)
    assert problem is not None
    assert problem.hint.startswith(
        "probably the latitude is missing its minus sign and the longitude is missing its minus"
    )
    assert problem.suggestion == SANTIAGO


def test_swapped_latitude_and_longitude() -> None:
    problem = check_coordinates(-70.6693, -33.4489, CHILE)
    assert problem is not None
    assert "swapped" in problem.hint
    assert "minus" not in problem.hint
    assert problem.suggestion == SANTIAGO


def test_swapped_and_missing_minus() -> None:
    problem = check_coordinates(70.6693, 33.4489, CHILE)
    assert problem is not None
    assert problem.hint.startswith(
        "probably latitude and longitude are swapped and the latitude is missing its minus sign"
        " and the longitude is missing its minus sign"
    )
    assert problem.suggestion == SANTIAGO


def test_out_of_range_swapped_easter_island() -> None:
    problem = check_coordinates(-109.4333, -27.15, CHILE)
    assert problem is not None
    assert "out of range" in problem.reason
    assert "swapped" in problem.hint
    assert problem.suggestion == (-27.15, -109.4333)


@pytest.mark.parametrize("pair", [(91.0, 0.0), (-33.0, -706693.0), (0.0, 180.5), (-95.0, -70.0)])
def test_out_of_range(pair: tuple[float, float]) -> None:
    problem = check_coordinates(*pair, CHILE)
    assert problem is not None
    assert "out of range" in problem.reason
    assert "decimal degrees" in problem.hint
    assert problem.suggestion is None


@pytest.mark.parametrize("pair", [(math.nan, -70.0), (-33.0, math.inf)])
def test_non_finite(pair: tuple[float, float]) -> None:
    problem = check_coordinates(*pair, CHILE)
    assert problem is not None
    assert "not finite" in problem.reason


def test_zero_zero_placeholder() -> None:
    problem = check_coordinates(0.0, 0.0, CHILE)
    assert problem is not None
    assert "placeholder" in problem.hint


def test_single_box_area_and_default_area() -> None:
    lombardy = ServiceArea("Lombardy", 44.6, 46.7, 8.4, 11.5)
    assert check_coordinates(45.46373, 9.1911, lombardy) is None
    problem = check_coordinates(-45.46373, 9.1911, lombardy)
    assert problem == CoordinateProblem(
        reason="coordinates (-45.46373, 9.1911) lie outside the service area Lombardy",
        hint="probably the latitude has a stray minus: (45.46373, 9.1911) lies inside Lombardy",
        suggestion=(45.46373, 9.1911),
    )
    assert check_coordinates(*SANTIAGO) is None


@pytest.mark.parametrize(
    "bounds",
    [(-10.0, -20.0, 0.0, 1.0), (0.0, 1.0, 5.0, 4.0), (-91.0, 0.0, 0.0, 1.0), (0, 1, 0, 181)],
)
def test_boxes_validate_their_bounds(bounds: tuple[float, float, float, float]) -> None:
    with pytest.raises(ValueError, match="bounds"):
        BoundingBox(*bounds)
    with pytest.raises(ValueError, match="bounds"):
        ServiceArea("bad", *bounds)


def test_chile_outer_box_encloses_its_boxes() -> None:
    for box in CHILE_BOXES:
        assert CHILE.min_latitude <= box.min_latitude <= box.max_latitude <= CHILE.max_latitude
        assert CHILE.min_longitude <= box.min_longitude <= box.max_longitude <= CHILE.max_longitude


@given(
    lat=st.floats(min_value=-90, max_value=90),
    lon=st.floats(min_value=-180, max_value=180),
)
def test_suggestions_always_land_inside(lat: float, lon: float) -> None:
    problem = check_coordinates(lat, lon, CHILE)
    if CHILE.contains(lat, lon):
        assert problem is None
        return
    assert problem is not None
    if problem.suggestion is not None:
        assert CHILE.contains(*problem.suggestion)
        assert {abs(v) for v in problem.suggestion} == {abs(lat), abs(lon)}


@given(lat=st.floats(min_value=-56.6, max_value=-17.4), lon=st.floats(min_value=-76, max_value=-66))
def test_missing_minus_found_for_any_continental_point(lat: float, lon: float) -> None:
    assume(CHILE.contains(lat, lon) and lat != 0)
    problem = check_coordinates(-lat, lon, CHILE)
    assert problem is not None
    assert problem.suggestion == (lat, lon)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("-33,4372", -33.4372),
        ("-33.4372", -33.4372),
        (" -70,6693 ", -70.6693),
        ("+12.5", 12.5),
        ("45", 45.0),
        ("0,0", 0.0),
        ("\u221233,5", -33.5),
    ],
)
def test_parse_decimal(text: str, value: float) -> None:
    assert parse_decimal(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  ",
        "abc",
        "1,234.5",
        "1.234,5",
        "1,234,567",
        "1.234.567",
        "1e5",
        "nan",
        "inf",
        "--3",
        "3-",
        "12,",
        ",5",
        "١٢",
        "33°26'",
        "-33.4372 S",
    ],
)
def test_parse_decimal_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a decimal number") as caught:
        parse_decimal(text)
    assert repr(text) in str(caught.value)


@given(value=st.floats(min_value=-180, max_value=180, allow_nan=False))
def test_parse_decimal_round_trips_point_and_comma(value: float) -> None:
    text = f"{value:.7f}"
    assert parse_decimal(text) == float(text)
    assert parse_decimal(text.replace(".", ",")) == float(text)


@given(text=st.text(max_size=12))
def test_parse_decimal_never_raises_other_errors(text: str) -> None:
    try:
        result = parse_decimal(text)
    except ValueError as error:
        message = str(error)
    else:
        assert math.isfinite(result)
        return
    assert repr(text) in message
