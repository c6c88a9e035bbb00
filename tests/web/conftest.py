"""A small asset factory writing rows straight into the tables, and an API client that checks
every response it receives for leaked sealed secrets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from smmc.store.tables import (
    concentrators,
    meter_links,
    meters,
    service_points,
    substations,
    transformers,
)
from smmc.web.app import create_app

SECRET_MARK = "SECRET"


def sealed(label: str) -> str:
    """A value shaped like a sealed envelope, recognisable if it ever leaks."""
    return f"v1:{SECRET_MARK}-{label}-c2VhbGVk"


@dataclass
class AssetFactory:
    engine: Engine
    ids: dict[tuple[str, str], int] = field(default_factory=dict)

    def _insert(self, table: sa.Table, key: str, values: dict[str, Any]) -> int:
        with self.engine.begin() as conn:
            new_id = conn.execute(table.insert().values(**values)).inserted_primary_key[0]
        self.ids[(table.name, key)] = new_id
        return int(new_id)

    def substation(self, name: str) -> int:
        return self._insert(substations, name, {"name": name})

    def transformer(self, code: str, substation: str, **values: Any) -> int:
        if ("substations", substation) not in self.ids:
            self.substation(substation)
        row = {"code": code, "substation_id": self.ids[("substations", substation)], **values}
        return self._insert(transformers, code, row)

    def concentrator(self, name: str, transformer: str | None = None, **values: Any) -> int:
        row: dict[str, Any] = {
            "name": name,
            "ppp_password_enc": sealed(f"{name}-ppp"),
            "maa_password_enc": sealed(f"{name}-maa"),
            "k2_password_enc": sealed(f"{name}-k2"),
            **values,
        }
        if transformer is not None:
            row["transformer_id"] = self.ids[("transformers", transformer)]
        return self._insert(concentrators, name, row)

    def service_point(self, name: str, **values: Any) -> int:
        return self._insert(service_points, name, {"name": name, **values})

    def meter(self, serial: str, concentrator: str | None = None, **values: Any) -> int:
        row: dict[str, Any] = {
            "serial_number": serial,
            "encryption_key_enc": sealed(f"{serial}-ek"),
            "authentication_key_enc": sealed(f"{serial}-ak"),
            **values,
        }
        if concentrator is not None:
            row["concentrator_id"] = self.ids[("concentrators", concentrator)]
        return self._insert(meters, serial, row)

    def link(
        self,
        serial: str,
        service_point: str,
        valid_from: datetime,
        valid_to: datetime | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                meter_links.insert().values(
                    meter_id=self.ids[("meters", serial)],
                    service_point_id=self.ids[("service_points", service_point)],
                    valid_from=valid_from,
                    valid_to=valid_to,
                )
            )


@pytest.fixture
def assets(db: Engine) -> AssetFactory:
    return AssetFactory(db)


def _refuse_secrets(response: httpx.Response) -> None:
    body = response.read().decode("utf-8", errors="replace")
    assert SECRET_MARK not in body, f"{response.request.url} leaked a sealed secret"


@dataclass
class StatementLog:
    """SQL statements the engine ran, to prove a response costs a fixed number of queries."""

    statements: list[str] = field(default_factory=list)

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(statement)


@pytest.fixture
def statements(db: Engine) -> Iterator[StatementLog]:
    log = StatementLog()
    sa.event.listen(db, "before_cursor_execute", log)
    yield log
    sa.event.remove(db, "before_cursor_execute", log)


@pytest.fixture
def client(db: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(db), raise_server_exceptions=False) as test_client:
        test_client.event_hooks["response"] = [_refuse_secrets]
        yield test_client


JAN = datetime(2025, 1, 1, 3, 0, tzinfo=UTC)
JUN = datetime(2025, 6, 1, 4, 0, tzinfo=UTC)


@pytest.fixture
def fleet(assets: AssetFactory) -> AssetFactory:
    """Two substations, two concentrators, four service points and four meters covering every
    filter: via concentrator, point-to-point, unlinked, a closed link and an open one."""
    assets.transformer("TR-001", "SS-NORTE", description="north feeder")
    assets.transformer("TR-002", "SS-SUR")
    assets.transformer("TR-003", "SS-SUR")
    assets.concentrator(
        "TD-1000",
        "TR-001",
        serial_number="20LVM50A10006010",
        comuna="Santiago",
        tag="urban",
        reachable=True,
        latitude=-33.4489,
        longitude=-70.6693,
        altitude=520.0,
        host="10.1.0.10",
        port=4059,
        ppp_username="ppp-user",
        time_zone="America/Santiago",
    )
    assets.concentrator(
        "TD-2000",
        "TR-002",
        serial_number="16CEC5061C000002",
        comuna="Maipu",
        tag="rural",
        reachable=False,
        time_zone="America/Punta_Arenas",
        k2_password_enc=None,
    )
    assets.service_point(
        "POD-1",
        comuna="Santiago",
        tag="res",
        net_billing=True,
        supply_status="connected",
        latitude=-33.45,
        longitude=-70.66,
        altitude=530.5,
    )
    assets.service_point(
        "POD-2",
        comuna="Maipu",
        tag="com",
        is_balance=True,
        supply_status="disconnected",
        latitude=-33.51,
        longitude=-70.76,
    )
    assets.service_point("POD-3", comuna="Santiago", tag="res")
    assets.service_point("POD-4", comuna="Renca", tag="res")
    assets.meter(
        "UAA001",
        "TD-1000",
        node_address=5,
        commissioned=True,
        reachable=True,
        in_dc_table=True,
        meter_type="monophase",
        phase="R",
        tag="alpha",
    )
    assets.meter(
        "UAA002",
        "TD-1000",
        node_address=6,
        commissioned=True,
        meter_type="polyphase",
        tag="beta",
        authentication_key_enc=None,
    )
    assets.meter("UAB003", host="10.9.0.3", port=4059, reachable=True, tag="beta")
    assets.meter("UAB004", encryption_key_enc=None, authentication_key_enc=None)
    assets.link("UAA001", "POD-1", JAN)
    assets.link("UAA002", "POD-4", JAN, JUN)
    assets.link("UAA002", "POD-2", JUN)
    return assets
