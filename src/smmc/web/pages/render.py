"""Page rendering: Jinja2 templates (autoescaping every `{{ }}`) and the message catalogue.

Jinja2 is the architecture's choice for the server-rendered pages; the templates only use
expressions, loops, conditionals, includes and one inherited layout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import yaml
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from smmc.domain.access import Permission, allows, restricted_to_grants
from smmc.store.users import LANGUAGES, Principal

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
LANGUAGE_COOKIE = "smmc_lang"
DEFAULT_LANGUAGE = "es"


class CatalogueError(RuntimeError):
    """The message catalogue is malformed (a packaging bug, caught by the tests)."""


@cache
def messages() -> Mapping[str, Mapping[str, str]]:
    text = resources.files("smmc.web.pages").joinpath("messages.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise CatalogueError("messages.yaml: expected a mapping of keys")
    for key, texts in raw.items():
        if not isinstance(texts, dict) or set(texts) != set(LANGUAGES):
            raise CatalogueError(f"messages.yaml: {key!r} needs exactly {LANGUAGES}")
    return raw


@dataclass(frozen=True, slots=True)
class Translator:
    language: str

    def __call__(self, key: str) -> str:
        texts = messages().get(key)
        return texts[self.language] if texts else key


def formatter(translate: Translator) -> Callable[[object], str]:
    """One way to show a cell: blank for None, Sí/No for booleans, UTC stamps to the second."""

    def fmt(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return translate("yes") if value else translate("no")
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        return str(value)

    return fmt


def _query_value(value: object) -> str:
    """A name inside a URL path segment or query value: `/` is escaped too, so it stays one
    component, and spaces become `+`."""
    return quote_plus(str(value))


@cache
def _environment() -> Environment:
    """Control lines drop their own line (trim/lstrip blocks), so loops add no blank lines;
    an unknown name is an error rather than an empty string."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES, encoding="utf-8"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["quote_plus"] = _query_value
    return environment


def language_of(request: Request, principal: Principal | None) -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return str(chosen)
    return principal.language if principal else DEFAULT_LANGUAGE


@dataclass(frozen=True, slots=True)
class NavItem:
    href: str
    key: str
    permission: Permission
    # Fleet-wide lists would show other service points to a stakeholder (I8).
    fleet_wide: bool = True


NAVIGATION = (
    NavItem("/works", "nav_works", Permission.VIEW_WORK_ORDERS),
    NavItem("/operations", "nav_operations", Permission.SUBMIT_WORK_ORDERS),
    NavItem("/assets/meters", "nav_meters", Permission.VIEW_ASSETS),
    NavItem("/assets/concentrators", "nav_concentrators", Permission.VIEW_ASSETS),
    NavItem("/assets/service-points", "nav_service_points", Permission.VIEW_ASSETS, False),
    NavItem("/map", "nav_map", Permission.VIEW_MAP),
    NavItem("/control-room", "nav_control_room", Permission.VIEW_CONTROL_ROOM),
    NavItem("/provisioning", "nav_provisioning", Permission.PROVISION),
    NavItem("/audit", "nav_audit", Permission.VIEW_AUDIT),
)


def navigation(principal: Principal | None) -> list[NavItem]:
    if principal is None:
        return []
    limited = restricted_to_grants(principal.role)
    return [
        item
        for item in NAVIGATION
        if allows(principal.role, item.permission) and not (limited and item.fleet_wide)
    ]


def render(
    request: Request,
    template: str,
    *,
    principal: Principal | None,
    csrf: str = "",
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A full page or fragment: every template gets the translator, the navigation the
    principal may use, and the session's CSRF token for its forms."""
    language = language_of(request, principal)
    translate = Translator(language)
    body = (
        _environment()
        .get_template(template)
        .render(
            t=translate,
            fmt=formatter(translate),
            lang=language,
            principal=principal,
            nav=navigation(principal),
            path=request.url.path,
            csrf=csrf,
            **context,
        )
    )
    return HTMLResponse(body, status_code=status_code)
