"""Operator pages: each renders for the roles that may use it and is refused (403) to the
others; works filters and CSV, batch progress, meter operations, provisioning and the
control room over real rows."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from access_helpers import add_users, csrf_of, login, secured_client
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from smmc.domain.access import Role
from smmc.domain.concentrator_status import encode_status_word
from smmc.domain.events import CONCENTRATOR_WORD
from smmc.domain.work_orders import ActivityType, Outcome
from smmc.store.readings import ensure_partitions
from smmc.store.secrets import SecretBox
from smmc.store.tables import (
    device_status_words,
    events,
    interval_readings,
    meters,
    reading_types,
    register_reads,
    stakeholder_grants,
)
from smmc.store.users import AccessStore
from smmc.store.work_orders import CSV_COLUMNS, TargetRef, WorkOrderFilter, WorkOrderQueue
from smmc.web.auth_cli import app as user_app
from smmc.web.auth_cli import ensure_demo_integration_token, ensure_demo_login
from smmc.web.pages.render import messages

if TYPE_CHECKING:
    from conftest import AssetFactory

# page -> roles that may open it (everyone else gets 403)
READERS = {Role.OPERATOR, Role.SPECIALIST, Role.ADMINISTRATOR, Role.WAREHOUSE_READER}
WRITERS = {Role.OPERATOR, Role.SPECIALIST, Role.ADMINISTRATOR}
PAGES = {
    "/works": READERS,
    "/works/export.csv": READERS,
    "/operations": WRITERS,
    "/operations/model.csv": WRITERS,
    "/assets/meters": READERS,
    "/assets/meters/UAA001": READERS | {Role.STAKEHOLDER},
    "/assets/concentrators": READERS,
    "/assets/concentrators/TD-1000": READERS,
    "/assets/service-points": READERS | {Role.STAKEHOLDER},
    "/assets/service-points/POD-1": READERS | {Role.STAKEHOLDER},
    "/map": READERS,
    "/control-room": READERS,
    "/provisioning": {Role.SPECIALIST, Role.ADMINISTRATOR},
    "/audit": {Role.ADMINISTRATOR},
}
INTERACTIVE = [role for role in Role if role is not Role.INTEGRATION]


@pytest.mark.parametrize("role", INTERACTIVE, ids=lambda role: role.value)
def test_every_page_renders_for_its_roles_and_403_for_others(
    db: Engine, fleet: object, role: Role
) -> None:
    store = add_users(db)
    store.grant("stakeholder", "POD-1")
    with secured_client(db) as client:
        login(client, role.value)
        for path, allowed in PAGES.items():
            response = client.get(path, follow_redirects=False)
            expected = 200 if role in allowed else 403
            assert response.status_code == expected, f"{role.value} {path}: {response.text[:300]}"
        home = client.get("/works" if role in READERS else "/assets/service-points")
    header = home.text.split("<nav>")[1].split("</nav>")[0]
    nav = {path for path in PAGES if f'href="{path}"' in header}
    reachable = {path for path, allowed in PAGES.items() if role in allowed and path.count("/") < 3}
    assert nav == {p for p in reachable if not p.endswith(".csv")}


def test_every_page_is_in_the_navigation_of_an_administrator(db: Engine, fleet: object) -> None:
    add_users(db)
    with secured_client(db) as client:
        login(client, "administrator")
        home = client.get("/works").text
    for path in PAGES:
        if path.count("/") < 3 and not path.endswith(".csv"):
            assert f'href="{path}"' in home


def test_messages_have_spanish_and_english_and_the_switch_works(db: Engine) -> None:
    assert all(set(texts) == {"es", "en"} for texts in messages().values())
    add_users(db)
    with secured_client(db) as client:
        login(client, "operator")
        assert "Trabajos" in client.get("/works").text
        client.get("/lang/en?next=/works")
        page = client.get("/works").text
    assert "Works" in page
    assert "Trabajos" not in page


def _orders(db: Engine) -> WorkOrderQueue:
    queue = WorkOrderQueue(db)
    queue.submit(ActivityType.METER_SYNC, [TargetRef(meter="UAA001"), TargetRef(meter="UAA002")])
    queue.submit(ActivityType.DISCONNECT, [TargetRef(meter="UAB003")], reason="non_payment")
    return queue


def test_works_filters_and_csv_download(db: Engine, fleet: object) -> None:
    add_users(db)
    _orders(db)
    with secured_client(db) as client:
        login(client, "operator")
        everything = client.get("/works")
        assert 'data-testid="works-total">3<' in everything.text
        sync = client.get("/works?activity=MeterSync")
        assert 'data-testid="works-total">2<' in sync.text
        assert "UAB003" not in sync.text
        one = client.get("/works?meter=UAB003&view=commercial_pending")
        assert 'data-testid="works-total">1<' in one.text
        none = client.get("/works?view=completed")
        assert 'data-testid="works-total">0<' in none.text
        bad = client.get("/works?idwork=abc")
        assert bad.status_code == 200
        assert "idwork: a positive whole number" in bad.text
        exported = client.get("/works/export.csv?activity=MeterSync")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert sorted(row[3] for row in rows[1:]) == ["UAA001", "UAA002"]


def test_running_batch_progress_and_cancel(db: Engine, fleet: object) -> None:
    add_users(db)
    queue = _orders(db)
    first = queue.lease("w", 1, timedelta(minutes=5), [ActivityType.METER_SYNC])[0]
    queue.record(first, Outcome.success({"ok": True}))
    with secured_client(db) as client:
        csrf = login(client, "operator")
        works = client.get("/works")
        assert 'hx-get="/works/batches/1/progress"' in works.text
        ended = queue.get(first.id)
        local_end = ended["ended_at"].astimezone(ZoneInfo(ended["time_zone"]))
        assert f"<td>{local_end:%Y-%m-%d %H:%M:%S}</td>" in works.text
        assert f"<td>{ended['ended_at']:%Y-%m-%d %H:%M:%S}</td>" in works.text
        fragment = client.get("/works/batches/1/progress")
        assert 'data-testid="batch-1-finished">1<' in fragment.text
        assert 'hx-trigger="every 2s"' in fragment.text  # still running: keeps polling
        cancelled = client.post(
            "/works/3/cancel", data={"csrf_token": csrf}, follow_redirects=False
        )
        assert cancelled.status_code == 303
        assert queue.get(3)["state"] == "CANCELLED"
        again = client.post("/works/3/cancel", data={"csrf_token": csrf}, follow_redirects=False)
        assert again.status_code == 403  # a final order cannot be cancelled twice
        missing = client.get("/works/batches/99/progress")
        assert missing.status_code == 404


def test_finished_batch_stops_polling(db: Engine, fleet: object) -> None:
    add_users(db)
    queue = WorkOrderQueue(db)
    result = queue.submit(ActivityType.READING, [TargetRef(meter="UAA001")])
    queue.cancel(queue.list_orders(WorkOrderFilter(batch_id=result.batch_id))[0][0]["id"])
    with secured_client(db) as client:
        login(client, "operator")
        fragment = client.get(f"/works/batches/{result.batch_id}/progress")
    assert "every 2s" not in fragment.text
    assert f'data-testid="batch-{result.batch_id}-finished">1<' in fragment.text


def test_csv_upload_creates_a_batch_and_reports_bad_rows(db: Engine, fleet: object) -> None:
    add_users(db)
    with secured_client(db) as client:
        csrf = login(client, "operator")
        model = client.get("/operations/model.csv")
        assert model.text.startswith("podname;serialnumber\n")
        body = "podname;serialnumber\nPOD-1;UAA001\n;UAB003\nPOD-9;NOPE\n;;\n"
        response = client.post(
            "/operations",
            data={"csrf_token": csrf, "activity": "MeterSync"},
            files={"file": ("meters.csv", body.encode(), "text/csv")},
        )
    assert response.status_code == 200, response.text
    assert 'data-testid="batch-created"' in response.text
    assert "Fila 4" in response.text  # the unknown meter, named by its line
    assert "Fila 5" in response.text  # both columns empty
    queue = WorkOrderQueue(db)
    rows, total = queue.list_orders(WorkOrderFilter(batch_id=1))
    assert total == 2
    assert {row["meter_serial"] for row in rows} == {"UAA001", "UAB003"}


def test_single_meter_operation_needs_a_target_and_a_known_activity(
    db: Engine, fleet: object
) -> None:
    add_users(db)
    with secured_client(db) as client:
        csrf = login(client, "operator")
        empty = client.post("/operations", data={"csrf_token": csrf, "activity": "MeterSync"})
        assert empty.status_code == 422
        odd = client.post(
            "/operations",
            data={"csrf_token": csrf, "activity": "FirmwareUpdate", "meter": "UAA001"},
        )
        assert odd.status_code == 422
        cut = client.post(
            "/operations",
            data={
                "csrf_token": csrf,
                "activity": "Disconnect",
                "meter": "UAA001",
                "reason": "non_payment",
            },
        )
        assert cut.status_code == 200, cut.text
    rows, total = WorkOrderQueue(db).list_orders(WorkOrderFilter(batch_id=None))
    assert total == 1
    assert rows[0]["activity"] == "Disconnect"


def test_asset_pages_search_and_show_history(db: Engine, fleet: object) -> None:
    add_users(db)
    _orders(db)
    with secured_client(db) as client:
        login(client, "warehouse_reader")
        found = client.get("/assets/meters?q=UAB")
        assert 'data-testid="list-total">2<' in found.text
        behind = client.get("/assets/meters?concentrator=TD-1000")
        assert 'data-testid="list-total">2<' in behind.text
        detail = client.get("/assets/meters/UAB003")
        assert "Disconnect" in detail.text
        assert client.get("/assets/meters/NOPE").status_code == 404
        dc = client.get("/assets/concentrators/TD-1000")
        assert "MeterSync" in dc.text
        reachable = client.get("/assets/concentrators?reachable=false")
        assert "TD-2000" in reachable.text
        assert "TD-1000" not in reachable.text
        sp = client.get("/assets/service-points?comuna=Santiago")
        assert 'data-testid="list-total">2<' in sp.text
        # A reader sees the works but is offered no cancel button and cannot cancel.
        works = client.get("/works")
        assert "/cancel" not in works.text
        refused = client.post(
            "/works/1/cancel", data={"csrf_token": csrf_of(works.text)}, follow_redirects=False
        )
        assert refused.status_code == 403


def test_provisioning_upload_reports_rejected_rows(
    db: Engine, tmp_path: Path, secret_box: SecretBox
) -> None:
    add_users(db)
    template = "code;substationname;description\nTR-1;SE-1;ok\n;SE-1;no code\n"
    with secured_client(db, secret_box, tmp_path / "reports") as client:
        csrf = login(client, "specialist")
        response = client.post(
            "/provisioning",
            data={"csrf_token": csrf},
            files={"file": ("transformers.csv", template.encode(), "text/csv")},
        )
        assert response.status_code == 200, response.text
        assert 'data-testid="rows-accepted">1<' in response.text
        assert 'data-testid="rows-rejected">1<' in response.text
        link = response.text.split('data-testid="error-report"')[0].rsplit('href="', 1)[1]
        report = client.get(link.split('"')[0])
        assert report.status_code == 200
        assert "row" in report.text.splitlines()[0]
        assert client.get("/provisioning/reports/..%2Fsecret.key").status_code == 404


def test_provisioning_without_a_secret_box_says_so(db: Engine) -> None:
    add_users(db)
    with secured_client(db) as client:
        csrf = login(client, "administrator")
        response = client.post(
            "/provisioning",
            data={"csrf_token": csrf},
            files={"file": ("t.csv", b"code;substationname\n", "text/csv")},
        )
    assert response.status_code == 422
    assert "no está configurado" in response.text


def test_control_room_shows_event_aggregates(db: Engine, fleet: object) -> None:
    add_users(db)
    now = datetime.now(UTC) - timedelta(minutes=5)
    with db.begin() as conn:
        meter_id = conn.execute(
            sa.select(meters.c.id).where(meters.c.serial_number == "UAA001")
        ).scalar_one()
        conn.execute(
            events.insert().values(
                message_id=str(uuid.uuid4()),
                device_kind="meter",
                device="UAA001",
                meter_id=meter_id,
                concentrator_id=fleet.ids[("concentrators", "TD-1000")],  # type: ignore[attr-defined]
                key="k1",
                code="3.26.0.185",
                acronym="PWR_OFF",
                description="Power failure",
                severity=1,
                priority="HIGH",
                category="power",
                routing="control_room",
                is_active=True,
                opened_at=now,
                source="test",
            )
        )
        conn.execute(
            device_status_words.insert(),
            [
                {
                    "device_kind": "concentrator",
                    "device": name,
                    "word": CONCENTRATOR_WORD,
                    "value": encode_status_word(letters),
                    "observed_at": now,
                    "source": "test",
                }
                for name, letters in (("TD-1000", "BOEG"), ("TD-2000", "BOEGLU"))
            ],
        )
        conn.execute(
            events.insert().values(
                message_id=str(uuid.uuid4()),
                device_kind="concentrator",
                device="TD-2000",
                concentrator_id=fleet.ids[("concentrators", "TD-2000")],  # type: ignore[attr-defined]
                key="k2",
                code="DC_TAMPER",
                acronym="L",
                description="Tamper detection",
                severity=1,
                priority="HIGH",
                category="tamper",
                routing="control_room",
                is_active=True,
                opened_at=now,
                source="test",
            )
        )
    with secured_client(db) as client:
        login(client, "operator")
        page = client.get("/control-room")
    assert page.status_code == 200
    share = page.text.split('data-testid="status-letters"')[1].split("</section>")[0]
    assert "<td>B</td><td>CE Table Load</td><td>2</td><td>100.0</td>" in share
    assert "<td>L</td><td>Tamper Detection</td><td>1</td><td>50.0</td>" in share
    top_words = page.text.split('data-testid="status-top"')[1].split("</section>")[0]
    assert "<td>TD-2000</td><td>00029E</td><td>L U</td>" in top_words
    assert "TD-1000" not in top_words  # a nominal word is not a condition
    history = page.text.split('data-testid="status-history"')[1].split("</section>")[0]
    assert f"<td>{now.date().isoformat()}</td>" in history
    top = page.text.split('data-testid="top-concentrators"')[1].split("</section>")[0]
    assert "TD-1000" in top
    assert "Power failure" in page.text
    assert "<rect" in page.text.split('data-testid="per-hour"')[1].split("</section>")[0]


# -- the CLI -----------------------------------------------------------------------------------


def test_user_cli_adds_users_tokens_and_grants(
    db: Engine, fleet: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.dialect.name != "sqlite":
        pytest.skip("the CLI reads SMMC_DATABASE_URL; one backend is enough")
    monkeypatch.setenv("SMMC_DATABASE_URL", db.url.render_as_string(hide_password=False))
    runner = CliRunner()
    added = runner.invoke(user_app, ["add", "eva", "--role", "stakeholder", "--password", "x" * 10])
    assert added.exit_code == 0, added.output
    bad_role = runner.invoke(user_app, ["add", "zed", "--role", "root", "--password", "x" * 10])
    assert bad_role.exit_code == 1
    assert runner.invoke(user_app, ["grant", "eva", "POD-1"]).exit_code == 0
    assert runner.invoke(user_app, ["grant", "eva", "POD-404"]).exit_code == 1
    issued = runner.invoke(user_app, ["token", "eva", "--name", "portal"])
    token = issued.output.strip()
    store = AccessStore(db)
    principal = store.principal_for_token(token)
    assert principal is not None
    assert principal.username == "eva"
    assert runner.invoke(user_app, ["token", "eva", "--revoke", "1"]).exit_code == 0
    assert store.principal_for_token(token) is None
    assert runner.invoke(user_app, ["passwd", "eva", "--password", "y" * 10]).exit_code == 0
    assert store.authenticate("eva", "y" * 10) is not None
    with db.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(stakeholder_grants)).scalar() == 1
        )


def test_demo_login_is_usable_and_changes_every_run(db: Engine) -> None:
    name, first = ensure_demo_login(db)
    _, second = ensure_demo_login(db)
    store = AccessStore(db)
    assert first != second
    assert store.authenticate(name, first) is None
    principal = store.authenticate(name, second)
    assert principal is not None
    assert principal.role is Role.ADMINISTRATOR


def test_demo_integration_token_calls_cim_and_cannot_log_in(db: Engine) -> None:
    name, first = ensure_demo_integration_token(db)
    again, second = ensure_demo_integration_token(db)
    store = AccessStore(db)
    assert name == again
    assert first != second
    for token in (first, second):
        principal = store.principal_for_token(token)
        assert principal is not None
        assert principal.role is Role.INTEGRATION
    assert store.user(name)["password_hash"] is None


def test_meter_page_shows_alarms_load_profile_and_registers(db: Engine, fleet: object) -> None:
    add_users(db)
    end = datetime(2026, 3, 2, tzinfo=UTC)
    with db.begin() as conn:
        meter_id = conn.execute(
            sa.select(meters.c.id).where(meters.c.serial_number == "UAA001")
        ).scalar_one()
        # Its own reading type: the seeded rows do not survive the `db` fixture's cleanup.
        type_id, type_name = 901, "Test active energy import profile"
        conn.execute(
            reading_types.insert().values(
                id=type_id, code="0.0.0.0.901", name=type_name, kind="interval", unit="kWh"
            )
        )
        ensure_partitions(conn, [(end - timedelta(days=d)).date() for d in range(4)])
        conn.execute(
            interval_readings.insert(),
            [
                {
                    "meter_id": meter_id,
                    "reading_type_id": type_id,
                    "interval_end": end - timedelta(minutes=15 * i),
                    "value": float(i % 7),
                }
                # three days: only the last two are drawn
                for i in range(288)
            ],
        )
        conn.execute(
            register_reads.insert().values(
                meter_id=meter_id,
                reading_type_id=type_id,
                captured_at=end,
                t1=1,
                t2=2,
                t3=3,
                t4=0,
                t5=0,
                t6=0,
                total=123456,
                energy_type=1,
            )
        )
        conn.execute(
            events.insert().values(
                message_id=str(uuid.uuid4()),
                device_kind="meter",
                device="UAA001",
                meter_id=meter_id,
                key="k",
                code="3.12.0.257",
                acronym="COVER",
                description="Terminal cover opened",
                severity=2,
                priority="MEDIUM",
                category="tamper",
                routing="control_room",
                is_active=True,
                opened_at=end,
                source="test",
            )
        )
    with secured_client(db) as client:
        login(client, "operator")
        page = client.get("/assets/meters/UAA001").text
        empty = client.get("/assets/meters/UAA002").text
    assert "Terminal cover opened" in page
    assert 'data-points="192"' in page  # 48 h of 15-minute intervals
    assert type_name in page
    assert "123456" in page
    assert 'data-testid="load-profile"' not in empty


def test_map_columns_carry_every_located_meter_with_its_state(db: Engine, fleet: object) -> None:
    add_users(db)
    with secured_client(db) as client:
        login(client, "operator")
        body = client.get("/map/meters.json").json()
        geojson = client.get("/api/map/meters").json()
    assert len(body["lon"]) == len(body["lat"]) == len(body["state"]) == len(geojson["features"])
    assert body["skipped_without_coordinates"] == geojson["skipped_without_coordinates"]
    scale = body["scale"]
    by_position = {
        (
            round(f["geometry"]["coordinates"][0] * scale),
            round(f["geometry"]["coordinates"][1] * scale),
        ): f["properties"]["lifecycle_state"]
        for f in geojson["features"]
    }
    mine = {
        (lon, lat): body["states"][state]
        for lon, lat, state in zip(body["lon"], body["lat"], body["state"], strict=True)
    }
    assert mine == by_position
    assert all(isinstance(value, int) for value in body["lon"] + body["lat"])


def test_map_columns_skip_meters_without_usable_coordinates(
    db: Engine, fleet: AssetFactory
) -> None:
    """Unlinked meters (the fleet's UAB003 and UAB004), a service point without coordinates
    and one off the globe are counted, never drawn."""
    fleet.service_point("POD-NOWHERE")
    fleet.meter("UAC005", "TD-1000")
    fleet.link("UAC005", "POD-NOWHERE", datetime(2025, 1, 1, tzinfo=UTC))
    fleet.service_point("POD-OFF", latitude=-33.0, longitude=-270.0)
    fleet.meter("UAC006", "TD-1000")
    fleet.link("UAC006", "POD-OFF", datetime(2025, 1, 1, tzinfo=UTC))
    add_users(db)
    with secured_client(db) as client:
        login(client, "operator")
        body = client.get("/map/meters.json").json()
    assert body["skipped_without_coordinates"] == 4
    assert sorted(zip(body["lon"], body["lat"], strict=True)) == [
        (-7076000, -3351000),
        (-7066000, -3345000),
    ]


def test_map_columns_answer_not_modified_until_the_fleet_changes(
    db: Engine, fleet: AssetFactory
) -> None:
    add_users(db)
    with secured_client(db) as client:
        login(client, "operator")
        first = client.get("/map/meters.json")
        tag = first.headers["etag"]
        assert first.headers["cache-control"] == "private, no-cache"
        again = client.get("/map/meters.json", headers={"If-None-Match": tag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == tag
        weak = client.get("/map/meters.json", headers={"If-None-Match": f'"x", W/{tag}'})
        assert weak.status_code == 304
        with db.begin() as conn:
            conn.execute(sa.update(meters).values(reachable=False))
        changed = client.get("/map/meters.json", headers={"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != tag
    assert set(changed.json()["state"]) != set(first.json()["state"])
