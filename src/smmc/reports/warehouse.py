"""Warehouse export (interface I7, read-only on the central DB): Parquet partitioned by date.

Layout, Hive style so Spark/Impala/DuckDB discover the partitions::

    OUT/interval_readings/date=YYYY-MM-DD/part-0.parquet
    OUT/register_reads/date=YYYY-MM-DD/part-0.parquet

``date`` is the local day in the meter's zone, as in the daily files. Only stored values are
exported (gaps are not invented); re-exporting a day replaces its files. On PostgreSQL the
export runs in a READ ONLY transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine

from smmc.domain.readings import TIER_COUNT, energy_type_code, reading_type_by_id
from smmc.domain.time import to_local
from smmc.reports.readings_files import (
    LOAD_PROFILE_TYPES,
    MEASURAND_TYPES,
    MeterPlace,
    day_intervals,
    day_register_reads,
    days_between,
    meter_places,
)

__all__ = ["WarehouseDay", "WarehouseUnavailable", "export_warehouse"]

_BATCH = 100_000


class WarehouseUnavailable(RuntimeError):
    """pyarrow is not installed: the Parquet export cannot run."""


@dataclass(frozen=True, slots=True)
class WarehouseDay:
    day: date
    interval_rows: int
    register_rows: int


def _arrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise WarehouseUnavailable("the warehouse export needs pyarrow") from exc
    return pa, pq


def _interval_schema(pa: Any) -> Any:
    return pa.schema(
        [
            ("serialnumber", pa.string()),
            ("pod", pa.string()),
            ("cimcode", pa.string()),
            ("interval_end_utc", pa.timestamp("us", tz="UTC")),
            ("sampledate", pa.timestamp("us")),
            ("value", pa.float64()),
            ("quality", pa.int16()),
        ]
    )


def _register_schema(pa: Any) -> Any:
    return pa.schema(
        [
            ("serialnumber", pa.string()),
            ("pod", pa.string()),
            ("cimcode", pa.string()),
            *((f"t{n}", pa.int64()) for n in range(1, TIER_COUNT + 1)),
            ("tot", pa.int64()),
            ("energytype", pa.int16()),
            ("energytype_description", pa.string()),
            ("captured_at_utc", pa.timestamp("us", tz="UTC")),
            ("time", pa.timestamp("us")),
            ("quality", pa.int16()),
        ]
    )


def _interval_records(
    conn: Connection, day: date, places: dict[int, MeterPlace]
) -> Iterator[dict[str, Any]]:
    for item in day_intervals(conn, day, LOAD_PROFILE_TYPES | MEASURAND_TYPES, places):
        if item.value is None:
            continue
        place = places[item.meter_id]
        yield {
            "serialnumber": place.serial,
            "pod": place.pod,
            "cimcode": item.reading_type.code,
            "interval_end_utc": item.interval_end,
            "sampledate": to_local(item.interval_end, place.time_zone).replace(tzinfo=None),
            "value": item.value,
            "quality": item.quality,
        }


def _register_records(
    conn: Connection, day: date, places: dict[int, MeterPlace]
) -> Iterator[dict[str, Any]]:
    for row in day_register_reads(conn, day, places):
        place = places[row["meter_id"]]
        kind = reading_type_by_id(row["reading_type_id"])
        code, description = energy_type_code(kind.energy) if kind.energy else (0, "")
        yield {
            "serialnumber": place.serial,
            "pod": place.pod,
            "cimcode": kind.code,
            **{f"t{n}": row[f"t{n}"] for n in range(1, TIER_COUNT + 1)},
            "tot": row["total"],
            "energytype": code,
            "energytype_description": description,
            "captured_at_utc": row["captured_at"],
            "time": to_local(row["captured_at"], place.time_zone).replace(tzinfo=None),
            "quality": row["quality"],
        }


def _write(path: Path, schema: Any, records: Iterator[dict[str, Any]]) -> int:
    pa, pq = _arrow()
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        batch: list[dict[str, Any]] = []
        for record in records:
            batch.append(record)
            if len(batch) >= _BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                count += len(batch)
                batch = []
        # An empty day still gets a (schema-only) file: consumers see the day was exported.
        writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        count += len(batch)
    return count


def export_warehouse(
    engine: Engine,
    first: date,
    last: date,
    out_dir: Path,
    *,
    progress: Callable[[WarehouseDay], None] | None = None,
) -> list[WarehouseDay]:
    """Export local days ``first``..``last`` to ``out_dir``; ``progress`` hears each day."""
    if last < first:
        raise ValueError(f"empty range: {first} .. {last}")
    pa, _ = _arrow()
    done = []
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        places = meter_places(conn)
        for day in days_between(first, last):
            part = f"date={day.isoformat()}"
            intervals = _write(
                out_dir / "interval_readings" / part / "part-0.parquet",
                _interval_schema(pa),
                _interval_records(conn, day, places),
            )
            registers = _write(
                out_dir / "register_reads" / part / "part-0.parquet",
                _register_schema(pa),
                _register_records(conn, day, places),
            )
            result = WarehouseDay(day, intervals, registers)
            done.append(result)
            if progress is not None:
                progress(result)
        conn.rollback()
    return done
