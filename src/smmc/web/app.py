"""The FastAPI application: REST API over the store, errors as problem details."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.engine import Engine

import smmc
from smmc.web.api import api_router, cim, events, readings, work_orders
from smmc.web.api.deps import EngineDep
from smmc.web.api.schemas import Health
from smmc.web.problems import install_problem_handlers


def create_app(engine: Engine) -> FastAPI:
    """One app per engine: the engine is injected rather than global so tests and several
    deployments can run side by side."""
    app = FastAPI(
        title="SMMC",
        version=smmc.__version__,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.engine = engine
    install_problem_handlers(app)
    app.include_router(api_router)
    app.include_router(work_orders.router)
    app.include_router(events.router)
    app.include_router(readings.router)
    app.include_router(cim.router)

    @app.get("/api/health", response_model=Health, tags=["health"])
    def health(engine: EngineDep) -> Health:
        """The database answers a trivial query; a failure surfaces as a 500 problem."""
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return Health(status="ok", database=engine.dialect.name)

    return app
