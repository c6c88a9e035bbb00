"""Work-order endpoints over the real databases (the `fleet` fixture: TD-1000 with UAA001
(POD-1) and UAA002 (POD-2), TD-2000 in Punta Arenas, point-to-point UAB003, unlinked UAB004)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from smmc.domain.work_orders import Outcome
from smmc.store.work_orders import CSV_COLUMNS, WorkOrderQueue


def _queue(client: TestClient) -> WorkOrderQueue:
    queue = client.app.state.work_order_queue  # type: ignore[attr-defined]
    assert isinstance(queue, WorkOrderQueue)
    return queue


def test_submit_list_and_detail(client: TestClient, fleet: object) -> None:
    response = client.post(
        "/api/workorders",
        json={"activity": "Reading", "meters": ["UAA001", "UAB003", "NOPE"], "priority": 7},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert body["rejected"] == [
        {"row": 2, "target": "meter=NOPE", "reason": "meter: serial 'NOPE' is not registered"}
    ]
    listing = client.get("/api/workorders", params={"idwork": body["batch_id"]}).json()
    assert listing["total"] == 2
    assert listing["limit"] == 100
    assert {item["meter"] for item in listing["items"]} == {"UAA001", "UAB003"}
    item = next(i for i in listing["items"] if i["meter"] == "UAA001")
    assert item["concentrator"] == "TD-1000"
    assert item["pod"] == "POD-1"
    assert item["priority"] == 7
    assert item["state"] == "PENDING"
    detail = client.get(f"/api/workorders/{item['id']}").json()
    assert detail["idwork"] == body["batch_id"]
    assert detail["history"] == []
    assert client.get("/api/workorders/999999").status_code == 404


def test_submit_by_concentrator_and_concentrator_activity(
    client: TestClient, fleet: object
) -> None:
    bulk = client.post("/api/workorders", json={"activity": "MeterSync", "concentrator": "TD-1000"})
    assert bulk.status_code == 201
    assert bulk.json()["accepted"] == 2
    own = client.post("/api/workorders", json={"activity": "MasterSync", "concentrator": "TD-2000"})
    assert own.status_code == 201
    items = client.get("/api/workorders", params={"activity": "MasterSync"}).json()["items"]
    assert [(i["concentrator"], i["meter"]) for i in items] == [("TD-2000", None)]
    missing = client.post("/api/workorders", json={"activity": "Reading", "concentrator": "TD-9"})
    assert missing.status_code == 422
    assert "TD-9" in missing.json()["detail"]


def test_submit_csv_body(client: TestClient, fleet: object) -> None:
    text = "podname;serialnumber\nPOD-1;UAA001\nPOD-2;\nPOD-3;UAA001\nbroken line\n"
    response = client.post(
        "/api/workorders",
        params={"activity": "CORTE", "reason": "non_payment", "special": "true"},
        content=text.encode(),
        headers={"content-type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert [(r["row"], r["reason"].split(":")[0]) for r in body["rejected"]] == [
        (5, "expected 2 columns podname;serialnumber, got 1"),
        (4, "pod"),
    ]
    items = client.get("/api/workorders", params={"idwork": body["batch_id"]}).json()["items"]
    assert sorted((i["activity"], i["meter"], i["reason"]) for i in items) == [
        ("Disconnect", "UAA001", "non_payment"),
        ("Disconnect", "UAA002", "non_payment"),
    ]
    no_activity = client.post(
        "/api/workorders", content=b"POD-1;UAA001\n", headers={"content-type": "text/csv"}
    )
    assert no_activity.status_code == 422


def test_submit_validation_problems(client: TestClient, fleet: object) -> None:
    bad = client.post(
        "/api/workorders", json={"activity": "Reading", "priority": 12, "meters": ["UAA001"]}
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"][0]["name"] == "priority"
    unknown = client.post("/api/workorders", json={"activity": "Dance", "meters": ["UAA001"]})
    assert unknown.status_code == 422
    assert "Dance" in unknown.json()["detail"]
    reasonless = client.post(
        "/api/workorders", json={"activity": "Disconnect", "meters": ["UAA001"]}
    )
    assert reasonless.status_code == 422
    assert reasonless.json()["errors"][0]["name"] == "reason"
    none_ok = client.post("/api/workorders", json={"activity": "Reading", "meters": ["X", "Y"]})
    assert none_ok.status_code == 422
    assert len(none_ok.json()["errors"]) == 2
    empty = client.post("/api/workorders", json={"activity": "Reading"})
    assert empty.status_code == 422
    not_json = client.post(
        "/api/workorders", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422


def test_cancel_and_batch_progress(client: TestClient, fleet: object) -> None:
    batch = client.post(
        "/api/workorders", json={"activity": "Reading", "meters": ["UAA001", "UAB003"]}
    ).json()
    queue = _queue(client)
    (running,) = queue.lease("w", 1, timedelta(minutes=5))
    items = client.get("/api/workorders", params={"idwork": batch["batch_id"]}).json()["items"]
    pending = next(i for i in items if i["id"] != running.id)
    cancelled = client.post(f"/api/workorders/{pending['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "CANCELLED"
    conflict = client.post(f"/api/workorders/{running.id}/cancel")
    assert conflict.status_code == 409
    assert conflict.json()["type"] == "urn:smmc:problem:invalid-transition"
    assert "RUNNING" in conflict.json()["detail"]
    assert client.post("/api/workorders/999999/cancel").status_code == 404
    progress = client.get(f"/api/workorders/batches/{batch['batch_id']}").json()
    assert progress["total"] == 2
    assert progress["finished"] == 1
    assert progress["by_state"] == {"CANCELLED": 1, "RUNNING": 1}
    assert client.get("/api/workorders/batches/999999").status_code == 404


def test_views_and_filters(client: TestClient, fleet: object) -> None:
    client.post(
        "/api/workorders", json={"activity": "Reading", "meters": ["UAA001"], "origin": "legacy"}
    )
    client.post("/api/workorders", json={"activity": "Commissioning", "meters": ["UAA002"]})
    commercial = client.get("/api/workorders", params={"view": "commercial_pending"}).json()
    assert [i["activity"] for i in commercial["items"]] == ["Reading"]
    provisioning = client.get("/api/workorders", params={"view": "provisioning"}).json()
    assert [i["meter"] for i in provisioning["items"]] == ["UAA002"]
    assert client.get("/api/workorders", params={"pod": "POD-2"}).json()["total"] == 1
    assert client.get("/api/workorders", params={"meter": "UAA001"}).json()["total"] == 1
    assert client.get("/api/workorders", params={"concentrator": "TD-2000"}).json()["total"] == 0
    assert client.get("/api/workorders", params={"view": "nope"}).status_code == 422
    assert (
        client.get("/api/workorders", params={"ended_from": "2025-01-01T00:00:00"}).status_code
        == 422
    )


def test_csv_report_columns(client: TestClient, fleet: object, db: Engine) -> None:
    batch = client.post(
        "/api/workorders",
        json={
            "activity": "Reading",
            "meters": ["UAA001"],
            "origin": "legacy",
            "external_id": "X-1",
        },
    ).json()
    queue = _queue(client)
    (order,) = queue.lease("w", 1, timedelta(minutes=5))
    queue.record(
        order,
        Outcome.failure("[READ_METER_MACADDRESS] [TB_ACK_40] REPEATER 1 FAILURE", retryable=False),
    )
    response = client.get("/api/workorders", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 2
    record = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert record["idwork"] == str(batch["batch_id"])
    assert record["concentrator"] == "TD-1000"
    assert record["pod"] == "POD-1"
    assert record["external sys"] == "TRUE"
    assert record["outer id"] == "X-1"
    assert record["is error"] == "TRUE"
    assert record["error description"] == "[READ_METER_MACADDRESS] [TB_ACK_40] REPEATER 1 FAILURE"
    started = datetime.strptime(record["startdate utc"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    local = datetime.strptime(record["startdate local"], "%Y-%m-%d %H:%M:%S")
    offset = (local - started.replace(tzinfo=None)).total_seconds() / 3600
    assert offset in (-3, -4)  # Santiago, summer or winter
    empty = client.get("/api/workorders", params={"format": "csv", "meter": "UAB004"})
    assert list(csv.reader(io.StringIO(empty.text))) == [list(CSV_COLUMNS)]


def test_hostile_input_is_a_422_not_a_500(client: TestClient, fleet: object) -> None:
    huge = 2**40
    assert client.get(f"/api/workorders/{huge}").status_code == 422
    assert client.post(f"/api/workorders/{huge}/cancel").status_code == 422
    assert client.get(f"/api/workorders/batches/{huge}").status_code == 422
    assert client.get("/api/workorders", params={"idwork": huge}).status_code == 422
    nul = client.post("/api/workorders", json={"activity": "Reading", "meters": ["UAA\x00001"]})
    assert nul.status_code == 422
    assert nul.json()["errors"][0]["name"].startswith("meters")
    nul_external = client.post(
        "/api/workorders",
        json={"activity": "Reading", "meters": ["UAA001"], "external_id": "a\x00b"},
    )
    assert nul_external.status_code == 422
    nul_csv = client.post(
        "/api/workorders",
        params={"activity": "Reading"},
        content=b"POD-1;UAA\x00001\n",
        headers={"content-type": "text/csv"},
    )
    assert nul_csv.status_code == 422
    not_utf8 = client.post(
        "/api/workorders",
        params={"activity": "Reading"},
        content=b"POD-1;\xff\n",
        headers={"content-type": "text/csv"},
    )
    assert not_utf8.status_code == 422
    assert client.get("/api/workorders", params={"meter": "a\x00"}).status_code == 422
