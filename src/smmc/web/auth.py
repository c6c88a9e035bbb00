"""Authentication and permission checks for the UI and the REST API.

Browsers hold a session cookie (Secure, HttpOnly, SameSite=Lax) and send the session's CSRF
token with every form; programs (I6 integration, I7 warehouse, I8 stakeholders) send a bearer
token. Either resolves to a `Principal`; `require(permission)` guards a route. Every write and
every stakeholder (I8) data access is written to the audit log.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from smmc.domain.access import Permission, allows, restricted_to_grants
from smmc.store.users import AccessStore, Principal, WebSession
from smmc.web import queries

SESSION_COOKIE = "smmc_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """No valid credential: pages redirect to the login form, the API answers 401."""


class Forbidden(Exception):
    """A known principal asking for something its role does not allow (403)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def access_store(request: Request) -> AccessStore:
    store: AccessStore | None = getattr(request.app.state, "access", None)
    if store is None:
        engine: Engine = request.app.state.engine
        store = request.app.state.access = AccessStore(engine)
    return store


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def web_session(request: Request) -> WebSession | None:
    """The browser session behind the request's cookie, cached on the request."""
    if hasattr(request.state, "web_session"):
        cached: WebSession | None = request.state.web_session
        return cached
    cookie = request.cookies.get(SESSION_COOKIE)
    found = access_store(request).session(cookie) if cookie else None
    request.state.web_session = found
    return found


def has_bearer(request: Request) -> bool:
    return _bearer(request) is not None


def token_principal(request: Request) -> Principal | None:
    """The principal behind the request's bearer token, if any (programs only: the
    session cookie is not looked at)."""
    token = _bearer(request)
    return access_store(request).principal_for_token(token) if token is not None else None


def principal_of(request: Request) -> Principal | None:
    """Bearer token first (programs), then the session cookie (browsers)."""
    if _bearer(request) is not None:
        return token_principal(request)
    session = web_session(request)
    return session.principal if session else None


def check_csrf(request: Request, submitted: str | None) -> None:
    """A cookie-authenticated write must echo the session's CSRF token (form field or
    header); bearer-token requests carry no ambient credential and need none."""
    if _bearer(request) is not None:
        return
    session = web_session(request)
    if session is None:
        raise LoginRequired
    given = submitted or request.headers.get(CSRF_HEADER) or ""
    if not hmac.compare_digest(given.encode(), session.csrf_token.encode()):
        raise Forbidden("CSRF token missing or wrong")


def require(permission: Permission) -> Callable[[Request], Principal]:
    """A dependency: the request's principal, if its role holds ``permission``."""

    def dependency(request: Request) -> Principal:
        principal = principal_of(request)
        if principal is None:
            raise LoginRequired
        if not allows(principal.role, permission):
            raise Forbidden(f"role {principal.role} may not {permission.value}")
        request.state.principal = principal
        return principal

    return dependency


def may_see_service_point(request: Request, principal: Principal, service_point: str) -> bool:
    """Stakeholders (I8) see only granted service points; everyone else sees all."""
    if not restricted_to_grants(principal.role):
        return True
    return service_point in access_store(request).granted_service_points(principal.user_id)


def audit(request: Request, principal: Principal | None, action: str, target: str) -> None:
    access_store(request).audit(principal, action, target, f"{request.method} {request.url.path}")


# -- the REST API ------------------------------------------------------------------------

_API_RULES: tuple[tuple[re.Pattern[str], Permission], ...] = (
    (re.compile(r"^/api/map(/|$)"), Permission.VIEW_MAP),
    (re.compile(r"^/api/events(/|$)"), Permission.VIEW_CONTROL_ROOM),
    (
        re.compile(r"^/api/(readings|register-reads|kpi|worklists|meter-data)(/|$)"),
        Permission.VIEW_METER_DATA,
    ),
    (re.compile(r"^/api/workorders(/|$)"), Permission.VIEW_WORK_ORDERS),
    (
        re.compile(r"^/api/(meters|concentrators|service-points|transformers)(/|$)"),
        Permission.VIEW_ASSETS,
    ),
)
_STAKEHOLDER_ROUTES = (
    (re.compile(r"^/api/service-points/([^/]+)$"), "service_point"),
    (re.compile(r"^/api/meters/([^/]+)(/links)?$"), "meter"),
)


def _api_permission(method: str, path: str) -> Permission:
    if method not in SAFE_METHODS:
        return Permission.SUBMIT_WORK_ORDERS
    for pattern, permission in _API_RULES:
        if pattern.search(path):
            return permission
    return Permission.VIEW_ASSETS


def _stakeholder_target(request: Request, path: str) -> str | None:
    """The service point a stakeholder's API request is about, or None if the route is not
    one a stakeholder may use (lists would show other service points)."""
    from urllib.parse import unquote

    for pattern, kind in _STAKEHOLDER_ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        name = unquote(match.group(1))
        if kind == "service_point":
            return name
        with request.app.state.engine.connect() as conn:
            meter = queries.get_meter(conn, name)
        return str(meter["service_point"]) if meter and meter["service_point"] else None
    return None


def api_access(request: Request) -> Principal | None:
    """Guards every `/api/*` route when the app enforces authentication."""
    if not request.app.state.auth_required or request.url.path == "/api/health":
        return None
    principal = principal_of(request)
    if principal is None:
        raise LoginRequired
    permission = _api_permission(request.method, request.url.path)
    if not allows(principal.role, permission):
        raise Forbidden(f"role {principal.role} may not {permission.value}")
    if request.method not in SAFE_METHODS:
        check_csrf(request, None)
        audit(request, principal, "api.write", request.url.path)
    if restricted_to_grants(principal.role):
        target = _stakeholder_target(request, request.url.path)
        if target is None or not may_see_service_point(request, principal, target):
            audit(request, principal, "i8.denied", request.url.path)
            raise Forbidden("not a service point granted to this account")
        audit(request, principal, "i8.read", target)
    return principal


ApiPrincipal = Annotated[Principal | None, Depends(api_access)]
