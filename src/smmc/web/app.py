"""The FastAPI application: REST API over the store, errors as problem details, and the
operators' pages behind a login."""

from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine

import smmc
from smmc.store.secrets import SecretBox
from smmc.web import pages
from smmc.web.api import api_router, cim, events, outbox, readings, work_orders
from smmc.web.api.deps import EngineDep
from smmc.web.api.schemas import Health
from smmc.web.auth import Forbidden, LoginRequired, api_access
from smmc.web.problems import install_problem_handlers, problem_response

STATIC_DIR = Path(__file__).parent / "static"


def create_app(
    engine: Engine,
    *,
    auth_required: bool = False,
    secret_box: SecretBox | None = None,
    report_dir: Path | None = None,
    cookie_secure: bool = True,
) -> FastAPI:
    """One app per engine: the engine is injected rather than global so tests and several
    deployments can run side by side. ``auth_required`` guards `/api/*` with sessions or
    bearer tokens (`smmc serve` and the demo turn it on); the pages always need a login.
    ``secret_box`` and ``report_dir`` enable the provisioning upload page. Browsers keep
    ``Secure`` cookies only over HTTPS or on localhost: ``cookie_secure=False`` is for a
    plain-HTTP deployment on another host name, never the default."""
    app = FastAPI(
        title="SMMC",
        version=smmc.__version__,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.engine = engine
    app.state.auth_required = auth_required
    app.state.secret_box = secret_box
    app.state.report_dir = report_dir
    app.state.cookie_secure = cookie_secure
    install_problem_handlers(app)
    install_auth_handlers(app)
    guarded = [Depends(api_access)]
    app.include_router(api_router, dependencies=guarded)
    app.include_router(work_orders.router, dependencies=guarded)
    app.include_router(events.router, dependencies=guarded)
    app.include_router(readings.router, dependencies=guarded)
    app.include_router(outbox.router, dependencies=guarded)
    app.include_router(cim.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/health", response_model=Health, tags=["health"])
    def health(engine: EngineDep) -> Health:
        """The database answers a trivial query; a failure surfaces as a 500 problem."""
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return Health(status="ok", database=engine.dialect.name)

    return app


def install_auth_handlers(app: FastAPI) -> None:
    """The API answers 401/403 as problem details; pages redirect to the login form or show
    a 403 page in the user's language."""

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if request.url.path.startswith("/api/"):
            return problem_response(
                401,
                "authentication required: a session or a bearer token",
                request.url.path,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return pages.login_redirect(request)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        if request.url.path.startswith("/api/"):
            return problem_response(403, exc.reason, request.url.path)
        return pages.forbidden_page(request, exc.reason)
