from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from smmc.store.db import create_engine
from smmc.web.app import create_app

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance"}


def assert_problem(response_status: int, body: dict[str, object], status: int) -> None:
    assert response_status == status
    assert body.keys() >= PROBLEM_MEMBERS
    assert body["status"] == status
    assert all(isinstance(body[member], str) for member in PROBLEM_MEMBERS - {"status"})


def test_health_names_the_database(client: TestClient, db: Engine) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": db.dialect.name}


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "SMMC"
    for path in (
        "/api/meters",
        "/api/meters/{serial}",
        "/api/meters/{serial}/links",
        "/api/concentrators/{name}",
        "/api/service-points",
        "/api/transformers/{code}",
        "/api/map/meters",
        "/api/map/concentrators",
        "/api/health",
    ):
        assert path in spec["paths"], path
    meter = spec["paths"]["/api/meters/{serial}"]["get"]["responses"]
    for status in ("404", "422", "500"):
        assert list(meter[status]["content"]) == ["application/problem+json"], status
    errors = meter["422"]["content"]["application/problem+json"]["schema"]["properties"]["errors"]
    assert set(errors["items"]["required"]) == {"in", "name", "detail"}
    assert "#/$defs" not in client.get("/openapi.json").text
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text


def test_not_found_record(client: TestClient) -> None:
    response = client.get("/api/concentrators/TD-66707_2")
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert_problem(response.status_code, body, 404)
    assert body["type"] == "urn:smmc:problem:not-found"
    assert body["detail"] == "concentrator 'TD-66707_2' not found"
    assert body["instance"] == "/api/concentrators/TD-66707_2"


def test_unknown_route_is_a_problem(client: TestClient) -> None:
    response = client.get("/api/no-such-thing")
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert_problem(response.status_code, body, 404)
    assert (body["type"], body["title"]) == ("about:blank", "Not Found")


def test_wrong_method_is_a_problem_that_keeps_allow(client: TestClient) -> None:
    response = client.delete("/api/meters")
    assert response.headers["content-type"] == "application/problem+json"
    assert_problem(response.status_code, response.json(), 405)
    assert response.headers["allow"] == "GET"


def test_validation_problem_lists_every_bad_parameter(client: TestClient) -> None:
    response = client.get(
        "/api/meters", params={"limit": "5000", "offset": "-2", "phase": "Z", "tag": "ok"}
    )
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert_problem(response.status_code, body, 422)
    assert body["type"] == "urn:smmc:problem:invalid-parameters"
    assert body["instance"] == "/api/meters"
    errors = {error["name"]: error for error in body["errors"]}
    assert set(errors) == {"limit", "offset", "phase"}
    assert all(error["in"] == "query" for error in errors.values())
    assert "1000" in errors["limit"]["detail"]
    assert "0" in errors["offset"]["detail"]
    for name in errors:
        assert name in body["detail"]


def test_validation_problem_does_not_echo_input(client: TestClient) -> None:
    marker = "<script>alert(1)</script>"
    response = client.get("/api/meters", params={"meter_type": marker})
    assert response.status_code == 422
    assert marker not in response.text


def test_path_parameter_problem(client: TestClient) -> None:
    response = client.get("/api/meters/UAA%00")
    body = response.json()
    assert_problem(response.status_code, body, 422)
    assert [(e["in"], e["name"]) for e in body["errors"]] == [("path", "serial")]


def test_unhandled_error_is_a_500_problem_without_internals(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(db)

    @app.get("/api/explode")
    def explode() -> None:
        raise RuntimeError("password=hunter2 in /srv/smmc/secret.py")

    with (
        TestClient(app, raise_server_exceptions=False) as client,
        caplog.at_level(logging.ERROR, logger="smmc.web.problems"),
    ):
        response = client.get("/api/explode")
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert_problem(response.status_code, body, 500)
    assert body["type"] == "urn:smmc:problem:internal-error"
    assert "hunter2" not in response.text
    assert "secret.py" not in response.text
    assert "RuntimeError" not in response.text
    incident = str(body["instance"]).removeprefix("urn:uuid:")
    assert incident in str(body["detail"])
    logged = [record for record in caplog.records if incident in record.getMessage()]
    assert logged
    assert logged[0].exc_info is not None


def test_database_failure_does_not_leak_sql(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'unmigrated.db'}")
    try:
        with TestClient(create_app(engine), raise_server_exceptions=False) as client:
            response = client.get("/api/meters", params={"tag": "x"})
    finally:
        engine.dispose()
    body = response.json()
    assert_problem(response.status_code, body, 500)
    assert "meters" not in str(body["detail"])
    assert "SELECT" not in response.text
    assert "no such table" not in response.text
