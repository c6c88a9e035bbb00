"""The operator UI in a real browser: login and roles, CSV meter sync with live progress,
works filters and CSV download, the map and the control room with data."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import LiveApp, LiveFleet, log_in, screenshot, seed_fleet

from smmc.domain.work_orders import ActivityType
from smmc.store.tables import events
from smmc.store.work_orders import CSV_COLUMNS, TargetRef, WorkOrderFilter, WorkOrderQueue

pytestmark = pytest.mark.browser


def test_login_and_roles(page: Any, live_app: LiveApp) -> None:
    seed_fleet(live_app.engine, 10)
    live_app.store.grant("stakeholder", "POD-1")
    page.goto("/works")
    assert "/login" in page.url  # no session: the login form
    screenshot(page, "login")
    log_in(page, "stakeholder")
    page.goto("/assets/service-points")
    rows = page.locator("[data-testid=service-points-table] tbody tr")
    assert rows.count() == 1
    assert rows.first.inner_text().startswith("POD-1")
    page.goto("/assets/service-points/POD-2")
    assert page.locator("h1").inner_text() in {"Acceso denegado", "Access denied"}
    response = page.goto("/assets/meters/UAA000002")
    assert response is not None
    assert response.status == 403
    page.click("text=Cerrar sesión")
    log_in(page, "warehouse_reader")
    page.goto("/works")
    assert page.locator("text=Operación de medidores").count() == 0
    response = page.goto("/operations")
    assert response is not None
    assert response.status == 403


def test_csv_meter_sync_upload_runs_the_batch_on_the_simulator_with_live_progress(
    field_page: Any, field_app: LiveFleet, tmp_path: Path
) -> None:
    """The CSV upload creates the batch; the real worker then syncs the simulated meters
    over TCP (two behind the concentrator, one point-to-point named by its POD only) and
    the page's htmx poll shows the batch going from 0 to 3 completed."""
    page = field_page
    plan, runner = field_app.plan, field_app.runner
    behind_dc = [plan.meter(i) for i in range(len(plan)) if i not in runner.point_to_point]
    direct = plan.meter(runner.point_to_point[0])
    log_in(page, "operator")
    page.goto("/operations")
    with page.expect_download() as model:
        page.click("[data-testid=csv-model]")
    assert Path(model.value.path()).read_text("utf-8").startswith("podname;serialnumber")
    upload = tmp_path / "sync.csv"
    upload.write_text(
        "podname;serialnumber\n"
        f"{behind_dc[0].pod};{behind_dc[0].serial}\n"
        f";{behind_dc[1].serial}\n"
        f"{direct.pod};\n",
        "utf-8",
    )
    form = page.locator("[data-testid=csv-upload]")
    form.locator("select[name=activity]").select_option("MeterSync")
    form.locator("input[type=file]").set_input_files(str(upload))
    form.locator("button[type=submit]").click()
    page.wait_for_selector("[data-testid=batch-created]")
    finished = page.locator("[data-testid=batch-1-finished]")
    finished.wait_for()
    assert finished.inner_text() == "0"  # the worker has not started yet
    field_app.start_worker()
    page.wait_for_function(
        "document.querySelector('[data-testid=batch-1-finished]').textContent === '3'",
        timeout=60000,
    )
    assert page.inner_text("[data-testid=batch-1] .state-completed") == "COMPLETED 3"
    screenshot(page, "operations")
    rows, total = WorkOrderQueue(field_app.engine).list_orders(WorkOrderFilter(batch_id=1))
    assert total == 3
    results = {row["meter_serial"]: json.loads(row["result"]) for row in rows}
    assert sorted(results) == sorted([behind_dc[0].serial, behind_dc[1].serial, direct.serial])
    assert results[direct.serial]["source"] == "head-end"
    assert results[behind_dc[0].serial]["source"] == "concentrator"
    assert all(row["state"] == "COMPLETED" and row["attempts"] >= 1 for row in rows)


def test_works_filters_and_csv_download(page: Any, live_app: LiveApp) -> None:
    seed_fleet(live_app.engine, 10)
    queue = WorkOrderQueue(live_app.engine)
    queue.submit(ActivityType.METER_SYNC, [TargetRef(meter=f"UAA00000{i}") for i in (1, 2, 3)])
    queue.submit(ActivityType.READING, [TargetRef(meter="UAA000004")])
    log_in(page, "operator")
    page.goto("/works")
    assert page.inner_text("[data-testid=works-total]") == "4"
    page.select_option("select[name=activity]", "Reading")
    page.click("[data-testid=works-filters] button[type=submit]")
    page.wait_for_url("**activity=Reading**")
    assert page.inner_text("[data-testid=works-total]") == "1"
    page.fill("input[name=meter]", "")
    page.select_option("select[name=activity]", "MeterSync")
    page.click("[data-testid=works-filters] button[type=submit]")
    page.wait_for_url("**activity=MeterSync**")
    assert page.inner_text("[data-testid=works-total]") == "3"
    screenshot(page, "works")
    with page.expect_download() as download:
        page.click("[data-testid=works-csv]")
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text("utf-8"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert sorted(row[3] for row in rows[1:]) == ["UAA000001", "UAA000002", "UAA000003"]


def test_map_renders_meters_and_concentrators(page: Any, live_app: LiveApp) -> None:
    seed_fleet(live_app.engine, 3000)
    log_in(page, "operator")
    page.goto("/map")
    page.wait_for_selector("#map[data-ready=true]")
    assert page.get_attribute("#map", "data-meters") == "3000"
    assert page.get_attribute("#map", "data-concentrators") == "2"
    # Something was drawn: the canvas is not a single flat colour.
    colours = page.evaluate(
        """() => {
            const c = document.getElementById('map');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            const seen = new Set();
            for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] + ',' + d[i+1] + ',' + d[i+2]);
            return seen.size;
        }"""
    )
    assert colours > 5
    screenshot(page, "map")
    page.goto("/assets/meters")
    screenshot(page, "meters")


def test_control_room_renders_events(page: Any, live_app: LiveApp) -> None:
    seed_fleet(live_app.engine, 10)
    now = datetime.now(UTC) - timedelta(minutes=10)
    with live_app.engine.begin() as conn:
        conn.execute(
            events.insert(),
            [
                {
                    "message_id": str(uuid.uuid4()),
                    "device_kind": "meter",
                    "device": f"UAA00000{i}",
                    "meter_id": i,
                    "concentrator_id": 1 + i % 2,
                    "key": f"k{i}",
                    "code": "3.26.0.185" if i % 2 else "3.12.0.257",
                    "acronym": "PWR_OFF" if i % 2 else "COVER",
                    "description": "Power failure" if i % 2 else "Cover opened",
                    "severity": 1,
                    "priority": "HIGH",
                    "category": "power",
                    "routing": "control_room",
                    "is_active": True,
                    "opened_at": now - timedelta(hours=i),
                    "source": "test",
                }
                for i in range(1, 7)
            ],
        )
    log_in(page, "operator")
    page.goto("/control-room")
    assert page.locator("[data-testid=per-hour] rect").count() == 6
    top = page.inner_text("[data-testid=top-concentrators]")
    assert "TD-1000" in top
    assert "TD-2000" in top
    assert "Cover opened" in page.inner_text("[data-testid=by-type]")
    screenshot(page, "control-room")
