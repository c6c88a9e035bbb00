"""The DC's collected profiles (load profile, measurands, daily closure, status words)
answer a range read with rows it encodes itself (one ``struct.pack`` a row, the range
filter judging each distinct clock once). Checked here against the generic way, octet for
octet: a ``Data`` per cell from the meter models (the measurands: the cells the meter's own
measurand profile serves), every row computed, filtered by ``ProfileGeneric`` itself.
Drifting clocks, a clock set, every anomaly and both DST changes of Santiago are in the
fleet."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smmc.dlms.apdu.selective_access import CaptureObjectDefinition, RangeDescriptor
from smmc.dlms.axdr import Data, EncodedData, encode_data
from smmc.dlms.cosem import ProfileGeneric
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.obis import Obis
from smmc.domain.time import zone
from smmc.sim.anomalies import AnomalyRates
from smmc.sim.clock import SimClock
from smmc.sim.concentrator import (
    COLLECTED_DAILY_OBIS,
    COLLECTED_LOAD_PROFILE_OBIS,
    COLLECTED_MEASURANDS_OBIS,
    COLLECTED_STATUS_OBIS,
    MANAGEMENT_CLIENT,
    ConcentratorServer,
    _billing_values,
    _status_values,
)
from smmc.sim.fleet import ClockDrift, FaultRates, default_fleet
from smmc.sim.meter_device import MEASURAND_PROFILE, MeterDevices
from smmc.sim.meter_model import MeterModel, MeterModelError

# Shortly after the local midnights that end the DST day in April, the DST day in
# September and an ordinary day.
NOWS = (
    dt.datetime(2026, 4, 6, 4, 10, tzinfo=dt.UTC),
    dt.datetime(2026, 9, 7, 3, 10, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 3, 3, 10, tzinfo=dt.UTC),
)
HISTORY_DAYS = 3
Row = tuple[Data, ...]


def make_dc(now: dt.datetime) -> ConcentratorServer:
    base = default_fleet().sized(1, 24, 0)
    fleet = dataclasses.replace(
        base,
        anomalies=AnomalyRates(*(0.3,) * 9),
        faults=FaultRates(0.0, 0.0, 0.0, 0.0, 0.0),
        clock_drift=ClockDrift(mean_ppm=0.0, sd_ppm=2000.0, tolerance_s=60.0),
        time=dataclasses.replace(base.time, history_days=HISTORY_DAYS, start=now),
    )
    plan = fleet.build(now)
    clock = SimClock(now, 1.0, HISTORY_DAYS, wall=lambda: now)
    dc = ConcentratorServer(plan, plan.concentrators[0], clock, meters=MeterDevices(plan, clock))
    jumped = dc.model(next(iter(dc.nodes.values())).index)
    jumped.set_clock(now - dt.timedelta(hours=30), now - dt.timedelta(hours=29, minutes=23))
    return dc


@pytest.fixture(scope="module", params=NOWS, ids=lambda now: now.date().isoformat())
def dc(request: pytest.FixtureRequest) -> ConcentratorServer:
    now: dt.datetime = request.param
    return make_dc(now)


def _octets(moment: dt.datetime) -> Data:
    return Data.octet_string(CosemDateTime.from_datetime(moment).to_bytes())


def _window(
    dc: ConcentratorServer, bounds: tuple[dt.datetime, dt.datetime]
) -> tuple[dt.datetime, dt.datetime]:
    """What the DC computes for a range: one second wider at the start, naive bounds in its
    zone, history start to now."""
    tz = zone(dc.spec.time_zone)
    start, end = (b if b.tzinfo else b.replace(tzinfo=tz) for b in bounds)
    return max(start - dt.timedelta(seconds=1), dc.plan.history_start), min(end, dc.clock.now())


def _load_profile(dc: ConcentratorServer, start: dt.datetime, end: dt.datetime) -> list[Row]:
    rows = []
    for address, node in sorted(dc.nodes.items()):
        serial = Data.octet_string(node.serial.encode("ascii"))
        for row in dc.model(node.index).load_profile(start, end):
            energies = (
                row.active_import_wh,
                row.active_export_wh,
                row.reactive_import_varh,
                row.reactive_export_varh,
            )
            cells = (
                _octets(row.clock),
                serial,
                Data.unsigned(int(row.status)),
                *(Data.double_long_unsigned(v) for v in energies),
            )
            rows.append(((row.captured_utc, address), cells))
    return [cells for _, cells in sorted(rows, key=lambda r: r[0])]


def _measurands(dc: ConcentratorServer, start: dt.datetime, end: dt.datetime) -> list[Row]:
    """Clock · serial · status · V L1 · I L1: the cells of the meter's own measurand profile
    (``1.0.99.2.0.255``, the same capture), as its device serves them."""
    rows = []
    for address, node in sorted(dc.nodes.items()):
        serial = Data.octet_string(node.serial.encode("ascii"))
        device = dc.meters.get(node.index).device
        own = device.find(7, MEASURAND_PROFILE)
        assert isinstance(own, ProfileGeneric)
        captured = dc.model(node.index).measurands(start, end)
        # The meter's profile rows of the same window: clock, status, V L1..L3, I L1..L3.
        served = own._range_rows(start + dt.timedelta(seconds=1), end)  # type: ignore[attr-defined]
        assert len(served) == len(captured)
        for row, cells in zip(captured, served, strict=True):
            rows.append(
                ((row.captured_utc, address), (cells[0], serial, cells[1], cells[2], cells[5]))
            )
    return [cells for _, cells in sorted(rows, key=lambda r: r[0])]


def _billing(model: MeterModel, at: dt.datetime) -> list[Data]:
    return [Data.double_long_unsigned(v) for v in _billing_values(model, at)]


def _words(model: MeterModel, at: dt.datetime) -> list[Data]:
    return [Data.long_unsigned(v) for v in _status_values(model, at)]


def _closures(
    dc: ConcentratorServer,
    start: dt.datetime,
    end: dt.datetime,
    cells: Callable[[MeterModel, dt.datetime], list[Data]],
) -> list[Row]:
    """Every closure from the day before the window's to the end's local day."""
    tz = zone(dc.spec.time_zone)
    latest = min(end + dt.timedelta(days=1), dc.clock.now())
    if latest <= start:
        return []
    first = start.astimezone(tz).date() - dt.timedelta(days=1)
    days = range((end.astimezone(tz).date() - first).days + 1)
    rows = []
    for address, node in sorted(dc.nodes.items()):
        model = dc.model(node.index)
        for day in (first + dt.timedelta(days=n) for n in days):
            try:
                billing = model.billing_row(day)
            except MeterModelError:
                continue
            if billing is None or billing.captured_utc > dc.clock.now():
                continue
            head = (_octets(billing.clock), Data.octet_string(node.serial.encode("ascii")))
            rows.append(
                ((billing.captured_utc, address), (*head, *cells(model, billing.captured_utc)))
            )
    return [row for _, row in sorted(rows, key=lambda r: r[0])]


def _reference(dc: ConcentratorServer, obis: Obis, descriptor: RangeDescriptor) -> bytes:
    """The generic answer: the rows built cell by cell, filtered by ``ProfileGeneric``."""
    bounds = tuple(
        CosemDateTime.from_bytes(bytes(v.value)).to_datetime()  # type: ignore[arg-type]
        for v in (descriptor.from_value, descriptor.to_value)
    )
    start, end = _window(dc, bounds)  # type: ignore[arg-type]
    if obis == COLLECTED_LOAD_PROFILE_OBIS:
        rows = _load_profile(dc, start, end) if start < end else []
    elif obis == COLLECTED_MEASURANDS_OBIS:
        rows = _measurands(dc, start, end) if start < end else []
    else:
        rows = _closures(dc, start, end, _billing if obis == COLLECTED_DAILY_OBIS else _words)
    served = dc.device.find(7, obis)
    assert isinstance(served, ProfileGeneric)
    reference = ProfileGeneric(obis, served.capture_objects, row_source=lambda: rows)
    return encode_data(reference.get(2, descriptor.to_access_selection()))


def _answer(dc: ConcentratorServer, obis: Obis, descriptor: RangeDescriptor) -> Data:
    return dc.device.get(7, obis, 2, descriptor.to_access_selection(), client_sap=MANAGEMENT_CLIENT)


def _bound(dc: ConcentratorServer, moment: dt.datetime, form: str) -> CosemDateTime:
    local = moment.astimezone(zone(dc.spec.time_zone))
    if form == "local":
        return CosemDateTime.from_datetime(local)
    if form == "naive":
        return CosemDateTime.from_datetime(local.replace(tzinfo=None))
    return CosemDateTime.from_datetime(moment)


forms = st.sampled_from(["utc", "local", "naive"])
# Whole minutes, quarter hours and odd instants with hundredths, across the history.
offsets = st.one_of(
    st.integers(0, HISTORY_DAYS * 96).map(lambda n: dt.timedelta(minutes=15 * n)),
    st.integers(0, HISTORY_DAYS * 86400 * 100).map(lambda n: dt.timedelta(milliseconds=10 * n)),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    obis=st.sampled_from(
        [
            COLLECTED_LOAD_PROFILE_OBIS,
            COLLECTED_MEASURANDS_OBIS,
            COLLECTED_DAILY_OBIS,
            COLLECTED_STATUS_OBIS,
        ]
    ),
    first=offsets,
    length=st.sampled_from([0, 1, 15, 60, 1439, 1440, 2880]).map(lambda m: dt.timedelta(minutes=m)),
    start_form=forms,
    end_form=forms,
)
def test_range_reads_answer_the_generic_octets(
    dc: ConcentratorServer,
    obis: Obis,
    first: dt.timedelta,
    length: dt.timedelta,
    start_form: str,
    end_form: str,
) -> None:
    start = dc.plan.history_start + first
    descriptor = RangeDescriptor.between(
        _bound(dc, start, start_form), _bound(dc, start + length, end_form)
    )
    answer = _answer(dc, obis, descriptor)
    assert isinstance(answer, EncodedData)
    assert encode_data(answer) == _reference(dc, obis, descriptor)


@pytest.mark.parametrize(
    "obis",
    [
        COLLECTED_LOAD_PROFILE_OBIS,
        COLLECTED_MEASURANDS_OBIS,
        COLLECTED_DAILY_OBIS,
        COLLECTED_STATUS_OBIS,
    ],
)
def test_the_last_day_as_the_head_end_reads_it(dc: ConcentratorServer, obis: Obis) -> None:
    """The fleet-day's reads: the load profile of the day, the closure at its end."""
    tz = zone(dc.spec.time_zone)
    end = dc.clock.now().astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    start = (end - dt.timedelta(hours=12)).replace(hour=0)
    interval = obis in (COLLECTED_LOAD_PROFILE_OBIS, COLLECTED_MEASURANDS_OBIS)
    if interval:
        bounds = (start + dt.timedelta(seconds=1), end)
    else:
        bounds = (end, end + dt.timedelta(minutes=5))
    descriptor = RangeDescriptor.between(
        CosemDateTime.from_datetime(bounds[0]), CosemDateTime.from_datetime(bounds[1])
    )
    answer = _answer(dc, obis, descriptor)
    assert encode_data(answer) == _reference(dc, obis, descriptor)
    rows = answer.value
    assert isinstance(rows, tuple)
    assert len(rows) >= (90 if interval else 1) * len(dc.nodes) // 2


def test_selected_columns_take_the_generic_path(dc: ConcentratorServer) -> None:
    """A read of some columns filters the decoded rows; the cells are those of the
    encoded answer."""
    now = dc.clock.now()
    bounds = (
        CosemDateTime.from_datetime(now - dt.timedelta(hours=6)),
        CosemDateTime.from_datetime(now),
    )
    profile = dc.device.find(7, COLLECTED_LOAD_PROFILE_OBIS)
    assert isinstance(profile, ProfileGeneric)
    columns: tuple[CaptureObjectDefinition, ...] = profile.capture_objects
    whole = _answer(dc, COLLECTED_LOAD_PROFILE_OBIS, RangeDescriptor.between(*bounds))
    some = _answer(
        dc, COLLECTED_LOAD_PROFILE_OBIS, RangeDescriptor.between(*bounds, (columns[0], columns[3]))
    )
    assert not isinstance(some, EncodedData)
    rows = whole.value
    assert isinstance(rows, tuple)
    assert rows
    picked = []
    for row in rows:
        cells = row.value
        assert isinstance(cells, tuple)
        picked.append(Data.structure((cells[0], cells[3])))
    assert some == Data.array(picked)
