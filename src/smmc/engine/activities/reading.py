"""On-demand reading: registers, load profile by range and measurands, in one association.

Payload (all optional): ``registers`` (OBIS codes; default the energy totals and the
active import per tariff), ``load_profile`` ``{"from": ISO, "to": ISO}`` (aware times),
``measurands`` (true: average power, voltages and currents). The status words are read in
the same association: every commercial order collects them (DOMAIN.md §4).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from smmc.dlms.obis import Obis
from smmc.domain.error_catalog import ErrorKey, FieldError
from smmc.domain.work_orders import ActivityType
from smmc.engine.activities.base import FieldExecutor, FieldResult
from smmc.field.drivers import LOAD_PROFILE, MEASURANDS
from smmc.field.errors import FieldFailure
from smmc.store.work_orders import LeasedOrder

__all__ = ["DEFAULT_REGISTERS", "ReadingExecutor"]

DEFAULT_REGISTERS = tuple(
    Obis.parse(text)
    for text in (
        "1.0.1.8.0.255",
        *(f"1.0.1.8.{tier}.255" for tier in range(1, 7)),
        "1.0.2.8.0.255",
        "1.0.3.8.0.255",
        "1.0.4.8.0.255",
    )
)


def _bad(text: str) -> FieldFailure:
    return FieldFailure(FieldError.of(ErrorKey.UNKNOWN, f"[READING] {text}"))


def _registers(payload: dict[str, Any]) -> tuple[Obis, ...]:
    raw = payload.get("registers")
    if raw is None:
        return DEFAULT_REGISTERS
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise _bad("registers must be a list of OBIS codes")
    try:
        return tuple(Obis.parse(item) for item in raw)
    except ValueError as exc:
        raise _bad(f"bad OBIS code: {exc}") from None


def _range(payload: dict[str, Any]) -> tuple[datetime, datetime] | None:
    raw = payload.get("load_profile")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("load_profile must be {from, to}")
    try:
        start = datetime.fromisoformat(str(raw["from"]))
        end = datetime.fromisoformat(str(raw["to"]))
    except (KeyError, ValueError):
        raise _bad("load_profile needs ISO 'from' and 'to'") from None
    if start.tzinfo is None or end.tzinfo is None or end < start:
        raise _bad("load_profile range must be aware and ordered")
    return start, end


class ReadingExecutor(FieldExecutor):
    activity = ActivityType.READING

    async def run(self, order: LeasedOrder) -> FieldResult:
        payload = dict(order.payload)
        registers = _registers(payload)
        window = _range(payload)
        result: dict[str, Any] = {}
        async with self.drivers.meter(
            self.meter_id(order), order.concentrator_id, order.priority
        ) as meter:
            readings = await meter.registers(registers)
            result["registers"] = [dataclasses.asdict(r) for r in readings]
            result["clock"] = (await meter.clock()).isoformat()
            if window is not None:
                result["load_profile"] = await meter.profile(LOAD_PROFILE, *window)
            if payload.get("measurands"):
                result["measurands"] = [
                    dataclasses.asdict(r) for r in await meter.registers(MEASURANDS)
                ]
            result["status_words"] = list(await meter.status_words())
        return FieldResult(result)
