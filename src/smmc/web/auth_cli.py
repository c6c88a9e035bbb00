"""`smmc user …`: accounts, passwords, API tokens and stakeholder grants from the shell.

The main CLI mounts `app` as its `user` sub-app; `ensure_demo_login` gives `smmc demo` a
login it can print.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.engine import Engine

from smmc.config import Settings
from smmc.domain.access import ROLES, Role, UnknownRole, parse_role
from smmc.store.db import create_engine
from smmc.store.migrate import upgrade
from smmc.store.users import AccessError, AccessStore

app = typer.Typer(help="Users, passwords, API tokens and stakeholder grants.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

DEMO_INTEGRATION_USERNAME = "legacy"
DEMO_USERNAME = "demo"


def _store() -> AccessStore:
    engine = create_engine(Settings.from_env().database_url)
    upgrade(engine)
    return AccessStore(engine)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]{message}[/]")
    return typer.Exit(1)


def _role_help() -> str:
    return ", ".join(f"{role.value} ({spec.interface})" for role, spec in ROLES.items())


@app.command("add")
def add(
    username: str,
    role: Annotated[str, typer.Option(help=f"One of: {_role_help()}.")],
    password: Annotated[
        str | None,
        typer.Option(help="Asked for when omitted; service accounts may use --no-password."),
    ] = None,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="Token-only account (integration, I6).")
    ] = False,
    language: Annotated[str, typer.Option(help="es or en.")] = "es",
) -> None:
    """Create a user."""
    try:
        chosen = parse_role(role)
    except UnknownRole as exc:
        raise _fail(str(exc)) from exc
    if password is None and not no_password:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = _store()
    try:
        store.create_user(username, chosen, password, language=language)
        store.audit(None, "user.add", username, f"role {chosen.value} (cli)")
    except AccessError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"user [bold]{username}[/] created with role {chosen.value}")


@app.command("passwd")
def passwd(
    username: str,
    password: Annotated[str | None, typer.Option(help="Asked for when omitted.")] = None,
) -> None:
    """Set a user's password; the user's open sessions end."""
    if password is None:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    store = _store()
    try:
        store.set_password(username, password)
        store.audit(None, "user.passwd", username, "cli")
    except AccessError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"password of [bold]{username}[/] changed")


@app.command("token")
def token(
    username: str,
    name: Annotated[str, typer.Option(help="What the token is for.")] = "api",
    days: Annotated[int | None, typer.Option(min=1, help="Expire after this many days.")] = None,
    revoke: Annotated[int | None, typer.Option(help="Revoke the token with this id.")] = None,
    list_tokens: Annotated[bool, typer.Option("--list", help="List the user's tokens.")] = False,
) -> None:
    """Issue a bearer token (printed once), list tokens, or revoke one."""
    store = _store()
    try:
        if list_tokens:
            for row in store.tokens(username):
                state = "revoked" if row["revoked_at"] else "active"
                console.print(f"{row['id']}\t{row['name']}\t{state}\texpires {row['expires_at']}")
            return
        if revoke is not None:
            store.revoke_token(username, revoke)
            store.audit(None, "token.revoke", username, f"token {revoke} (cli)")
            console.print(f"token {revoke} of [bold]{username}[/] revoked")
            return
        expires = datetime.now(UTC) + timedelta(days=days) if days else None
        value = store.issue_token(username, name, expires)
        store.audit(None, "token.issue", username, f"{name} (cli)")
    except AccessError as exc:
        raise _fail(str(exc)) from exc
    console.print(value)


@app.command("grant")
def grant(username: str, service_points: list[str]) -> None:
    """Grant a stakeholder (I8) read access to service points."""
    store = _store()
    try:
        if store.user(username)["role"] != Role.STAKEHOLDER.value:
            raise _fail(f"{username} is not a stakeholder account")
        for name in service_points:
            store.grant(username, name)
            store.audit(None, "grant", username, name)
    except AccessError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"{username} may read {len(service_points)} service point(s)")


def ensure_demo_login(engine: Engine) -> tuple[str, str]:
    """An administrator account for `smmc demo` with a fresh random password each run:
    (username, password) for the demo to print."""
    password = secrets.token_urlsafe(12)
    AccessStore(engine).ensure_user(DEMO_USERNAME, Role.ADMINISTRATOR, password)
    return DEMO_USERNAME, password


def ensure_demo_integration_token(engine: Engine) -> tuple[str, str]:
    """A token-only integration (I6) account for `smmc demo`, so the Legacy simulator can call
    /cim: (username, a fresh bearer token) for the demo to print."""
    store = AccessStore(engine)
    try:
        store.user(DEMO_INTEGRATION_USERNAME)
    except AccessError:
        store.create_user(DEMO_INTEGRATION_USERNAME, Role.INTEGRATION)
    return DEMO_INTEGRATION_USERNAME, store.issue_token(DEMO_INTEGRATION_USERNAME, "demo")
