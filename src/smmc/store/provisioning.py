"""`smmc provision import`: the seven templates from file to database.

Rows are validated by `smmc.domain.provisioning`, checked against what the database already
holds (references), and upserted on their natural key in chunks, each chunk its own
transaction: a bad row never discards the good rows around it, and every rejected row lands
in an error report with its row number, column and reason.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine

from smmc.domain.assets import (
    ConcentratorAttributes,
    ConcentratorComposition,
    ConcentratorSite,
    Meter,
    MeterLink,
    PointToPoint,
    Secret,
    ServicePoint,
    Transformer,
    ViaConcentrator,
)
from smmc.domain.geo import ServiceArea
from smmc.domain.provisioning import (
    IMPORT_ORDER,
    Record,
    RowIssue,
    Template,
    TemplateKind,
    UnknownTemplate,
    detect_template,
    normalise_column,
    sniff_delimiter,
    validate_row,
)
from smmc.store import tables as t
from smmc.store.secrets import SecretBox

CHUNK_ROWS = 5000
CREDENTIAL_COLUMNS = ("ppp_password_enc", "maa_password_enc", "k2_password_enc")
ATTRIBUTE_COLUMNS = (
    "adlvc",
    "tag",
    "ppp_username",
    "maa_username",
    "host",
    "port",
    *CREDENTIAL_COLUMNS,
)
REPORT_COLUMNS = ("row", "column", "value", "level", "reason")


class UnreadableFile(Exception):
    """The file cannot be read at all: missing, not text, or not a provisioning template."""


@dataclass(frozen=True, slots=True)
class ImportOptions:
    service_area: ServiceArea | None
    report_dir: Path
    chunk_rows: int = CHUNK_ROWS


@dataclass(slots=True)
class ImportResult:
    path: Path
    template: Template | None = None
    rows_total: int = 0
    accepted: int = 0
    rejected: int = 0
    created: int = 0
    updated: int = 0
    issues: list[RowIssue] = field(default_factory=list)
    report_path: Path | None = None
    fatal: str | None = None

    @property
    def warnings(self) -> int:
        return sum(1 for issue in self.issues if issue.level == "warning")

    @property
    def exit_code(self) -> int:
        """0 every row accepted, 2 some rows rejected, 1 the file could not be read."""
        if self.fatal is not None:
            return 1
        return 2 if self.rejected else 0


@dataclass(slots=True)
class _Parsed:
    template: Template
    columns: frozenset[str]
    rows: Iterator[tuple[int, dict[str, str], int]]
    """(row number, values by column, count of non-empty fields beyond the header)"""
    total: int
    file_issues: list[RowIssue]


def _decode(path: Path) -> tuple[str, list[RowIssue]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"{path}: {exc.strerror or exc}") from exc
    if b"\x00" in raw:
        raise UnreadableFile(f"{path}: a binary file, not CSV text")
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        # Spreadsheets on Windows save "CSV" in their ANSI code page; say so rather than fail.
        issue = RowIssue(
            0, None, None, f"not UTF-8 (byte {exc.start}); read as Windows-1252", "warning"
        )
        # A BOM says UTF-8, but the bytes after it are not: drop it so the header still reads.
        return raw.removeprefix(codecs.BOM_UTF8).decode("cp1252", errors="replace"), [issue]


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def parse_file(path: Path) -> _Parsed:
    text, issues = _decode(path)
    # The line breaks the csv module knows; str.splitlines() also breaks on \v, \f, U+2028...
    lines = _LINE_BREAK.split(text)
    header_index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        raise UnreadableFile(f"{path}: the file is empty")
    delimiter = sniff_delimiter(lines[header_index])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for _ in range(header_index + 1):
            header = next(reader)
    except csv.Error as exc:
        raise UnreadableFile(f"{path}: line {reader.line_num}: {exc}") from exc
    try:
        template = detect_template(header)
    except UnknownTemplate as exc:
        raise UnreadableFile(f"{path}: {exc}") from exc
    columns = [normalise_column(c) for c in header]
    known = set(template.columns)
    header_row = header_index + 1
    for name in columns:
        if name and name not in known:
            issues.append(RowIssue(header_row, name, None, "unknown column, ignored", "warning"))
    total = sum(1 for line in lines[header_index + 1 :] if line.strip())

    def rows() -> Iterator[tuple[int, dict[str, str], int]]:
        # Count records, not physical lines: a spreadsheet shows a quoted cell that spans
        # lines as one row, and a blank line as an empty row.
        row = header_row
        try:
            for fields in reader:
                row += 1
                if not any(f.strip() for f in fields):
                    continue
                extra = sum(1 for f in fields[len(columns) :] if f.strip())
                yield row, dict(zip(columns, fields, strict=False)), extra
        except csv.Error as exc:
            raise UnreadableFile(f"{path}: line {reader.line_num}: {exc}") from exc

    return _Parsed(template, frozenset(columns), rows(), total, issues)


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    key: str,
    update: Sequence[str],
) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE on both backends: one executemany on SQLite; on
    PostgreSQL the rows are COPied into a temporary table and upserted from it in one
    statement, which saves a round trip per row."""
    if not rows:
        return
    if "updated_at" in table.c:
        now = datetime.now(UTC)
        for row in rows:
            row.setdefault("created_at", now)
            row["updated_at"] = now
        update = [*update, "updated_at"]
    if conn.dialect.name == "postgresql":
        _copy_upsert(conn, table, rows, key, update)
        return
    statement = sqlite.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=[key], set_={col: statement.excluded[col] for col in update}
    )
    conn.execute(statement, list(rows))


# Identifiers in the statements below come from our own table metadata, never from input.
def _copy_rows(
    cursor: Any, target: str, columns: list[str], rows: Sequence[dict[str, Any]]
) -> None:
    quoted = ", ".join(f'"{c}"' for c in columns)
    with cursor.copy(f'COPY "{target}" ({quoted}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def _copy_upsert(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    key: str,
    update: Sequence[str],
) -> None:
    columns = list(rows[0])
    quoted = ", ".join(f'"{c}"' for c in columns)
    staging = f"staging_{table.name}"
    with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(f'DROP TABLE IF EXISTS "{staging}"')
        cursor.execute(
            f'CREATE TEMPORARY TABLE "{staging}" ON COMMIT DROP AS '  # noqa: S608
            f'SELECT {quoted} FROM "{table.name}" WITH NO DATA'
        )
        _copy_rows(cursor, staging, columns, rows)
        assignments = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in update)
        action = f"DO UPDATE SET {assignments}" if update else "DO NOTHING"
        cursor.execute(
            f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM "{staging}" '  # noqa: S608
            f'ON CONFLICT ("{key}") {action}'
        )


def bulk_insert(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Plain inserts: COPY on PostgreSQL, one executemany on SQLite."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), list(rows))
        return
    with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        _copy_rows(cursor, table.name, list(rows[0]), rows)


def _ids(
    conn: Connection, table: sa.Table, key: str, only: Sequence[str] | None = None
) -> dict[str, int]:
    """Natural key → id, for the whole table or only the given keys."""
    query = sa.select(table.c[key], table.c.id)
    if only is not None:
        query = query.where(table.c[key].in_(only))
    return dict(conn.execute(query).all())


class _Applier:
    """Applies one template's validated records to the database, chunk by chunk, with the
    lookups it needs loaded once per file and kept current as rows are created."""

    def __init__(self, engine: Engine, box: SecretBox, template: Template, columns: frozenset[str]):
        self.engine = engine
        self.box = box
        self.template = template
        self.columns = columns
        self.created = 0
        self.updated = 0
        self.started = datetime.now(UTC)
        with engine.connect() as conn:
            self._load(conn)

    def _load(self, conn: Connection) -> None:
        kind = self.template.kind
        self.substations = _ids(conn, t.substations, "name")
        self.concentrators = _ids(conn, t.concentrators, "name")
        if kind in (
            TemplateKind.TRANSFORMER,
            TemplateKind.CONCENTRATOR_COMPOSITION,
            TemplateKind.SERVICE_POINT,
        ):
            self.transformers = {
                code: (ident, sub)
                for code, ident, sub in conn.execute(
                    sa.select(
                        t.transformers.c.code, t.transformers.c.id, t.transformers.c.substation_id
                    )
                )
            }
        if kind in (TemplateKind.CONCENTRATOR_ATTRIBUTES, TemplateKind.CONCENTRATOR_COMPOSITION):
            c = t.concentrators.c
            query = sa.select(c.serial_number, c.name).where(c.serial_number.is_not(None))
            self.serials = dict(conn.execute(query).all())
            self.serial_of = {name: serial for serial, name in self.serials.items()}
            self.claimed: set[str] = set()
        if kind in (TemplateKind.METER, TemplateKind.METER_LINK):
            self.meters = _ids(conn, t.meters, "serial_number")
        if kind in (TemplateKind.SERVICE_POINT, TemplateKind.METER_LINK):
            self.service_points = _ids(conn, t.service_points, "name")
        if kind is TemplateKind.METER_LINK:
            self.points_linked: dict[int, int] = {}
            self.open_by_meter: dict[int, tuple[int, int, datetime]] = {}
            self.open_by_point: dict[int, tuple[int, int, datetime]] = {}
            self._reload_open_links(conn)

    def _present(self, mapping: dict[str, tuple[str, ...]]) -> list[str]:
        return [db for column, dbs in mapping.items() if column in self.columns for db in dbs]

    def _seal(self, secret: Secret | None, context: str) -> str | None:
        return None if secret is None else self.box.seal(secret, context)

    def _count(self, existing: dict[str, Any], keys: Sequence[str]) -> None:
        for key in keys:
            if key in existing:
                self.updated += 1
            else:
                self.created += 1

    def apply(self, records: list[tuple[int, Record]]) -> list[RowIssue]:
        with self.engine.begin() as conn:
            handler = getattr(self, f"_apply_{self.template.kind.value}")
            issues: list[RowIssue] = handler(conn, records)
        return issues

    def _apply_transformer(
        self, conn: Connection, records: list[tuple[int, Record]]
    ) -> list[RowIssue]:
        items = [r for _, r in records if isinstance(r, Transformer)]
        self._ensure_substations(conn, {r.substation_name for r in items})
        rows = [
            {
                "code": r.code,
                "substation_id": self.substations[r.substation_name],
                "description": r.description,
            }
            for r in items
        ]
        self._count(self.transformers, [r.code for r in items])
        upsert(conn, t.transformers, rows, "code", ["substation_id", "description"])
        self.transformers.update(_transformer_map(conn, [r.code for r in items]))
        return []

    def _ensure_substations(self, conn: Connection, names: set[str]) -> None:
        missing = [{"name": n} for n in sorted(names) if n not in self.substations]
        if missing:
            upsert(conn, t.substations, missing, "name", ["name"])
            self.substations.update(_ids(conn, t.substations, "name"))

    def _apply_concentrator_site(
        self, conn: Connection, records: list[tuple[int, Record]]
    ) -> list[RowIssue]:
        items = [r for _, r in records if isinstance(r, ConcentratorSite)]
        rows = [
            {
                "name": r.name,
                "description": r.description,
                **_place(r),
                "time_zone": r.time_zone,
                "windows_time_zone_id": r.windows_time_zone_id,
            }
            for r in items
        ]
        update = self._present(
            {
                "description": ("description",),
                "address": ("address",),
                "city": ("city",),
                "comuna": ("comuna",),
                "latitude": ("latitude",),
                "longitude": ("longitude",),
                "altitude": ("altitude",),
                "windowstimezoneid": ("time_zone", "windows_time_zone_id"),
            }
        )
        self._count(self.concentrators, [r.name for r in items])
        upsert(conn, t.concentrators, rows, "name", sorted(set(update)))
        self.concentrators = _ids(conn, t.concentrators, "name")
        return []

    def _apply_concentrator_composition(
        self, conn: Connection, records: list[tuple[int, Record]]
    ) -> list[RowIssue]:
        issues: list[RowIssue] = []
        accepted: list[ConcentratorComposition] = []
        # New transformer code → its substation, as named by an earlier row of this chunk.
        planned: dict[str, str] = {}
        for row, r in records:
            if not isinstance(r, ConcentratorComposition):
                continue
            owner = self.serials.get(r.serial_number)
            # A record named after its serial is a placeholder left by template 6, unless
            # an earlier row of this file gave it that name.
            placeholder = owner == r.serial_number and r.serial_number not in self.claimed
            if owner is not None and owner != r.name and not placeholder:
                issues.append(
                    RowIssue(
                        row,
                        "concentratorserialnumber",
                        r.serial_number,
                        f"already belongs to concentrator {owner}",
                    )
                )
                continue
            known = self.transformers.get(r.transformer_code)
            planned_under = planned.get(r.transformer_code, r.substation_name)
            if (
                known is not None and known[1] != self.substations.get(r.substation_name)
            ) or planned_under != r.substation_name:
                issues.append(
                    RowIssue(
                        row,
                        "transformername",
                        r.transformer_code,
                        f"belongs to another substation than {r.substation_name}",
                    )
                )
                continue
            if known is None and r.transformer_code not in planned:
                issues.append(
                    RowIssue(
                        row,
                        "transformername",
                        r.transformer_code,
                        "not provisioned yet (template 5): created under substation "
                        f"{r.substation_name}",
                        "warning",
                    )
                )
            if r.name not in self.concentrators and owner is None:
                issues.append(
                    RowIssue(
                        row,
                        "concentratorname",
                        r.name,
                        "no site yet (template 4): created without a location",
                        "warning",
                    )
                )
            previous = self.serial_of.get(r.name)
            if previous is not None and previous != r.serial_number:
                issues.append(
                    RowIssue(
                        row,
                        "concentratorserialnumber",
                        r.serial_number,
                        f"replaces serial number {previous}: the old device's credentials "
                        "are cleared until its attributes (template 6) are imported",
                        "warning",
                    )
                )
                self._clear_credentials(conn, r.name)
            if owner == r.serial_number != r.name:
                self._adopt(conn, placeholder=owner, name=r.name)
                self.serial_of.pop(owner, None)
            accepted.append(r)
            if known is None:
                planned[r.transformer_code] = r.substation_name
            # Claim the serial now, so a later row of this file naming it is refused
            # instead of breaking the chunk's upsert on the unique serial number.
            if previous is not None:
                self.serials.pop(previous, None)
            self.serials[r.serial_number] = r.name
            self.serial_of[r.name] = r.serial_number
            self.claimed.add(r.serial_number)
        self._ensure_substations(conn, {r.substation_name for r in accepted})
        new_transformers: list[dict[str, Any]] = [
            {"code": code, "substation_id": self.substations[substation]}
            for code, substation in planned.items()
        ]
        if new_transformers:
            upsert(conn, t.transformers, new_transformers, "code", ["substation_id"])
            self.transformers.update(
                _transformer_map(conn, [str(r["code"]) for r in new_transformers])
            )
        rows = [
            {
                "name": r.name,
                "serial_number": r.serial_number,
                "spontaneous_profile": r.spontaneous_profile,
                "procedure_profile": r.procedure_profile,
                "transformer_id": self.transformers[r.transformer_code][0],
                "module_serial": r.module_serial,
                "sim_serial": r.sim_serial,
                "ethernet_name": r.ethernet_name,
            }
            for r in accepted
        ]
        self._count(self.concentrators, [r.name for r in accepted])
        upsert(
            conn, t.concentrators, rows, "name", [k for k in rows[0] if k != "name"] if rows else []
        )
        self.concentrators = _ids(conn, t.concentrators, "name")
        return issues

    def _clear_credentials(self, conn: Connection, name: str) -> None:
        c = t.concentrators.c
        conn.execute(
            t.concentrators.update().where(c.name == name).values(dict.fromkeys(CREDENTIAL_COLUMNS))
        )

    def _adopt(self, conn: Connection, placeholder: str, name: str) -> None:
        """Attributes (template 6) may arrive before the composition that names their
        concentrator: they wait on a record named after the serial number, which the
        composition renames, or merges into the site record of that name."""
        c = t.concentrators.c
        if name not in self.concentrators:
            conn.execute(t.concentrators.update().where(c.name == placeholder).values(name=name))
        else:
            carried = conn.execute(
                sa.select(*(c[column] for column in ATTRIBUTE_COLUMNS)).where(c.name == placeholder)
            ).one()
            for table in (t.meters, t.events):
                conn.execute(
                    table.update()
                    .where(table.c.concentrator_id == self.concentrators[placeholder])
                    .values(concentrator_id=self.concentrators[name])
                )
            conn.execute(t.concentrators.delete().where(c.name == placeholder))
            conn.execute(
                t.concentrators.update()
                .where(c.name == name)
                .values(dict(zip(ATTRIBUTE_COLUMNS, carried, strict=True)))
            )
        self.concentrators = _ids(conn, t.concentrators, "name")

    def _apply_concentrator_attributes(
        self, conn: Connection, records: list[tuple[int, Record]]
    ) -> list[RowIssue]:
        issues: list[RowIssue] = []
        rows: list[dict[str, Any]] = []
        for row, r in records:
            if not isinstance(r, ConcentratorAttributes):
                continue
            name = self.serials.get(r.serial_number)
            if name is None and r.serial_number in self.concentrators:
                # The placeholder's name is taken by another concentrator: writing there
                # would give this device's credentials to that one.
                issues.append(
                    RowIssue(
                        row,
                        "serialnumber",
                        r.serial_number,
                        "no concentrator has this serial number, and the concentrator named "
                        "so has another one: import the composition (template 7) first",
                    )
                )
                continue
            if name is None:
                issues.append(
                    RowIssue(
                        row,
                        "serialnumber",
                        r.serial_number,
                        "no concentrator has this serial number yet: kept under the serial "
                        "number until its composition (template 7) names it",
                        "warning",
                    )
                )
                name = r.serial_number
                self.serials[name] = name
            context = f"concentrators:{r.serial_number}"
            rows.append(
                {
                    "name": name,
                    "serial_number": r.serial_number,
                    "adlvc": r.adlvc,
                    "tag": r.tag,
                    "ppp_username": r.ppp_username,
                    "ppp_password_enc": self._seal(r.ppp_password, f"{context}:ppp_password"),
                    "maa_username": r.maa_username,
                    "maa_password_enc": self._seal(r.maa_password, f"{context}:maa_password"),
                    "k2_password_enc": self._seal(r.k2_password, f"{context}:k2_password"),
                    "host": r.host,
                    "port": r.port,
                }
            )
        update = self._present(
            {
                "adlvc": ("adlvc",),
                "tag": ("tag",),
                "ppp_username": ("ppp_username",),
                "ppp_password": ("ppp_password_enc",),
                "maa_username": ("maa_username",),
                "maa_password": ("maa_password_enc",),
                "k2_password": ("k2_password_enc",),
                "ipaddress": ("host", "port"),
            }
        )
        self._count(self.concentrators, [row["name"] for row in rows])
        upsert(conn, t.concentrators, rows, "name", update)
        self.concentrators = _ids(conn, t.concentrators, "name")
        return issues

    def _apply_service_point(
        self, conn: Connection, records: list[tuple[int, Record]]
    ) -> list[RowIssue]:
        issues: list[RowIssue] = []
        items: list[ServicePoint] = []
        for row, r in records:
            if not isinstance(r, ServicePoint):
                continue
            if r.transformer_code is not None and r.transformer_code not in self.transformers:
                issues.append(
                    RowIssue(
                        row,
                        "transformer",
                        r.transformer_code,
                        "no such transformer: provision it first (template 5)",
                    )
                )
                continue
            items.append(r)
        rows = [
            {
                "name": r.name,
                **_place(r),
                "transformer_id": (
                    None if r.transformer_code is None else self.transformers[r.transformer_code][0]
                ),
                "tag": r.tag,
                "is_balance": r.is_balance,
                "net_billing": r.net_billing,
                "tariff": r.tariff,
                "contracted_capacity_kw": r.contracted_capacity_kw,
                "supply_status": r.supply_status.value,
            }
            for r in items
        ]
        update = self._present(
            {
                "address": ("address",),
                "city": ("city",),
                "comuna": ("comuna",),
                "latitude": ("latitude",),
                "longitude": ("longitude",),
                "altitude": ("altitude",),
                "tag": ("tag",),
                "isbalance": ("is_balance",),
                "netbilling": ("net_billing",),
                "tariff": ("tariff",),
                "contractedcapacity": ("contracted_capacity_kw",),
                "supplystatus": ("supply_status",),
                "transformer": ("transformer_id",),
            }
        )
        self._count(self.service_points, [r.name for r in items])
        upsert(conn, t.service_points, rows, "name", sorted(set(update)))
        self.service_points.update(_ids(conn, t.service_points, "name", [r.name for r in items]))
        return issues

    def _apply_meter(self, conn: Connection, records: list[tuple[int, Record]]) -> list[RowIssue]:
        issues: list[RowIssue] = []
        rows: list[dict[str, Any]] = []
        for row, r in records:
            if not isinstance(r, Meter):
                continue
            concentrator_id: int | None = None
            node_address = host = port = None
            if isinstance(r.path, ViaConcentrator):
                concentrator_id = self.concentrators.get(r.path.concentrator_name)
                if concentrator_id is None:
                    issues.append(
                        RowIssue(
                            row,
                            "concentrator",
                            r.path.concentrator_name,
                            "no such concentrator: provision it first",
                        )
                    )
                    continue
                node_address = r.path.node_address
            elif isinstance(r.path, PointToPoint):
                host, port = r.path.host, r.path.port
            context = f"meters:{r.serial_number}"
            rows.append(
                {
                    "serial_number": r.serial_number,
                    "board_serial": r.board_serial,
                    "mac_address": r.mac_address,
                    "firmware_id": r.firmware_id,
                    "hardware_id": r.hardware_id,
                    "service_kind": r.service_kind,
                    "tag": r.tag,
                    "encryption_key_enc": self._seal(r.encryption_key, f"{context}:encryption_key"),
                    "authentication_key_enc": self._seal(
                        r.authentication_key, f"{context}:authentication_key"
                    ),
                    "meter_type": r.meter_type.value,
                    "phase": r.phase.value if r.phase else None,
                    "concentrator_id": concentrator_id,
                    "node_address": node_address,
                    "host": host,
                    "port": port,
                }
            )
        path_columns = ("concentrator_id", "node_address", "host", "port")
        update = self._present(
            {
                "serialnumber_board": ("board_serial",),
                "macaddress": ("mac_address",),
                "firmwareid": ("firmware_id",),
                "hardwareid": ("hardware_id",),
                "servicekind": ("service_kind",),
                "tag": ("tag",),
                "primarykey": ("encryption_key_enc",),
                "secondarykey": ("authentication_key_enc",),
                "metertype": ("meter_type",),
                "phase": ("phase",),
                "concentrator": path_columns,
                "ipaddress": path_columns,
            }
        )
        self._count(self.meters, [row["serial_number"] for row in rows])
        upsert(conn, t.meters, rows, "serial_number", sorted(set(update)))
        self.meters.update(
            _ids(conn, t.meters, "serial_number", [row["serial_number"] for row in rows])
        )
        return issues

    def _apply_meter_link(
        self, conn: Connection, records: list[tuple[int, Record]]
    ) -> list[RowIssue]:
        issues: list[RowIssue] = []
        closes: list[dict[str, Any]] = []
        opens: list[dict[str, Any]] = []
        for row, r in records:
            if not isinstance(r, MeterLink):
                continue
            meter_id = self.meters.get(r.meter_serial)
            point_id = self.service_points.get(r.service_point_name)
            if meter_id is None:
                issues.append(
                    RowIssue(
                        row,
                        "serialnumber",
                        r.meter_serial,
                        "no such meter: import the meter template (2) first",
                    )
                )
            if point_id is None:
                issues.append(
                    RowIssue(
                        row,
                        "podname",
                        r.service_point_name,
                        "no such POD: import the POD template (1) first",
                    )
                )
            if meter_id is None or point_id is None:
                continue
            current = self.open_by_meter.get(meter_id)
            if point_id in self.points_linked:
                issues.append(
                    RowIssue(
                        row,
                        "podname",
                        r.service_point_name,
                        f"row {self.points_linked[point_id]} of this file already "
                        "links a meter to this POD",
                    )
                )
                continue
            self.points_linked[point_id] = row
            if current is not None and current[1] == point_id:
                self.updated += 1
                continue
            valid_from = r.valid_from or self.started
            for link in (current, self.open_by_point.get(point_id)):
                if link is None:
                    continue
                if valid_from < link[2]:
                    issues.append(
                        RowIssue(
                            row,
                            "validfrom",
                            str(valid_from),
                            "is before the start of the link it replaces",
                        )
                    )
                    break
            else:
                for link in (current, self.open_by_point.get(point_id)):
                    if link is not None:
                        closes.append({"link_id": link[0], "valid_to": valid_from})
                if current is not None:
                    self.open_by_point.pop(current[1], None)
                displaced = self.open_by_point.get(point_id)
                if displaced is not None:
                    self.open_by_meter.pop(displaced[1], None)
                opens.append(
                    {"meter_id": meter_id, "service_point_id": point_id, "valid_from": valid_from}
                )
                self.open_by_meter[meter_id] = (0, point_id, valid_from)
                self.open_by_point[point_id] = (0, meter_id, valid_from)
        if closes:
            conn.execute(
                t.meter_links.update()
                .where(t.meter_links.c.id == sa.bindparam("link_id"))
                .values(valid_to=sa.bindparam("valid_to")),
                closes,
            )
        if opens:
            bulk_insert(conn, t.meter_links, opens)
            self._reload_open_links(conn, [o["meter_id"] for o in opens])
        self.created += len(opens)
        return issues

    def _reload_open_links(self, conn: Connection, meter_ids: list[int] | None = None) -> None:
        c = t.meter_links.c
        query = sa.select(c.id, c.meter_id, c.service_point_id, c.valid_from).where(
            c.valid_to.is_(None)
        )
        if meter_ids is not None:
            query = query.where(c.meter_id.in_(meter_ids))
        for link_id, meter_id, point_id, valid_from in conn.execute(query):
            self.open_by_meter[meter_id] = (link_id, point_id, valid_from)
            self.open_by_point[point_id] = (link_id, meter_id, valid_from)


def _place(record: ConcentratorSite | ServicePoint) -> dict[str, Any]:
    """The columns a site and a POD share: where it is."""
    return {
        "address": record.address,
        "city": record.city,
        "comuna": record.comuna,
        "latitude": record.location.latitude,
        "longitude": record.location.longitude,
        "altitude": record.location.altitude,
    }


def _transformer_map(conn: Connection, codes: list[str]) -> dict[str, tuple[int, int]]:
    c = t.transformers.c
    query = sa.select(c.code, c.id, c.substation_id).where(c.code.in_(codes))
    return {code: (ident, sub) for code, ident, sub in conn.execute(query)}


def write_report(path: Path, issues: Sequence[RowIssue]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(REPORT_COLUMNS)
        for issue in sorted(issues, key=lambda i: (i.row, i.level != "error")):
            writer.writerow(
                (issue.row, issue.column or "", issue.value or "", issue.level, issue.reason)
            )


def _report_path(report_dir: Path, stem: str, started: datetime) -> Path:
    """A new file per import: two imports of one name in the same second (the same file
    twice, or equal names from two folders) must not overwrite each other's report."""
    stamp = started.strftime("%Y%m%dT%H%M%S")
    candidate = report_dir / f"{stem}.{stamp}.errors.csv"
    attempt = 1
    while candidate.exists():
        attempt += 1
        candidate = report_dir / f"{stem}.{stamp}-{attempt}.errors.csv"
    return candidate


def import_file(
    engine: Engine,
    box: SecretBox,
    path: Path,
    options: ImportOptions,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import one template file. `progress(done, total)` is called after every chunk."""
    result = ImportResult(path)
    started = datetime.now(UTC)
    try:
        parsed = parse_file(path)
    except UnreadableFile as exc:
        result.fatal = str(exc)
        return result
    result.template = template = parsed.template
    result.issues.extend(parsed.file_issues)
    applier = _Applier(engine, box, template, parsed.columns)
    seen: dict[str, int] = {}
    chunk: list[tuple[int, Record]] = []

    def flush() -> None:
        rejected = applier.apply(chunk)
        result.issues.extend(rejected)
        bad_rows = {i.row for i in rejected if i.level == "error"}
        result.rejected += len(bad_rows)
        result.accepted += len(chunk) - len(bad_rows)
        chunk.clear()
        if progress is not None:
            progress(result.rows_total, parsed.total)

    try:
        for row, values, extra in parsed.rows:
            result.rows_total += 1
            if extra:
                result.issues.append(
                    RowIssue(row, None, None, f"has {extra} more fields than the header")
                )
                result.rejected += 1
                continue
            checked = validate_row(template, row, values, options.service_area)
            result.issues.extend(checked.issues)
            if checked.record is None:
                result.rejected += 1
                continue
            key = values.get(template.key, "").strip()
            if key in seen:
                result.issues.append(
                    RowIssue(
                        row, template.key, key, f"repeats row {seen[key]} in this file; ignored"
                    )
                )
                result.rejected += 1
                continue
            seen[key] = row
            chunk.append((row, checked.record))
            if len(chunk) >= options.chunk_rows:
                flush()
    except UnreadableFile as exc:
        result.fatal = str(exc)
    # Rows read before a line the csv module cannot split are as good as earlier chunks.
    flush()
    result.created, result.updated = applier.created, applier.updated
    if result.issues:
        result.report_path = _report_path(options.report_dir, path.stem, started)
        write_report(result.report_path, result.issues)
    with engine.begin() as conn:
        conn.execute(
            t.import_runs.insert().values(
                file_name=path.name,
                template=template.kind.value,
                rows_total=result.rows_total,
                rows_accepted=result.accepted,
                rows_rejected=result.rejected,
                error_report=str(result.report_path) if result.report_path else None,
                started_at=started,
                finished_at=datetime.now(UTC),
            )
        )
    return result


def import_order(paths: Sequence[Path]) -> list[Path]:
    """Sort files so referenced records come first; unreadable files keep their place last,
    where `import_file` reports them."""
    rank = {kind: i for i, kind in enumerate(IMPORT_ORDER)}

    def position(path: Path) -> int:
        try:
            return rank[parse_file(path).template.kind]
        except UnreadableFile:
            return len(rank)

    return sorted(paths, key=position)
