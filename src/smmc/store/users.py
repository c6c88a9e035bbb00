"""Users, password hashes, API tokens, web sessions, stakeholder grants and the audit log.

Passwords are hashed with scrypt (stdlib) in a self-describing string so the cost can be
raised later without invalidating stored hashes. Tokens and session cookies are random
values of which only a SHA-256 is stored: a copy of the database hands out no credential.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from smmc.domain.access import Role, parse_role
from smmc.store import tables as t

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSWORD_LENGTH = 8
SESSION_TTL = timedelta(hours=12)
LANGUAGES = ("es", "en")


class AccessError(ValueError):
    """A user, token or grant request that cannot be honoured (unknown name, weak password…)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: resolved from a session cookie or a bearer token."""

    user_id: int
    username: str
    role: Role
    language: str = "es"


@dataclass(frozen=True, slots=True)
class WebSession:
    principal: Principal
    csrf_token: str


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Constant-time check; a malformed or missing hash never verifies."""
    if not stored:
        return False
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
        digest = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=2**26
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _principal(row: RowMapping) -> Principal:
    return Principal(row["id"], row["username"], Role(row["role"]), row["language"])


class AccessStore:
    """Repository over one engine; ``clock`` is injectable so expiry tests do not sleep."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = _utc_now) -> None:
        self.engine = engine
        self.clock = clock

    # -- users ----------------------------------------------------------------------------

    def create_user(
        self,
        username: str,
        role: Role | str,
        password: str | None = None,
        *,
        display_name: str | None = None,
        language: str = "es",
    ) -> int:
        chosen = role if isinstance(role, Role) else parse_role(role)
        name = username.strip()
        if not name or len(name) > 64 or "\x00" in name:
            raise AccessError("username: 1 to 64 characters, no NUL")
        if language not in LANGUAGES:
            raise AccessError(f"language: one of {', '.join(LANGUAGES)}")
        values = {
            "username": name,
            "role": chosen.value,
            "display_name": display_name,
            "language": language,
            "active": True,
            "password_hash": self._checked_hash(password) if password is not None else None,
        }
        with self.engine.begin() as conn:
            if conn.execute(sa.select(t.users.c.id).where(t.users.c.username == name)).first():
                raise AccessError(f"user {name!r} already exists")
            key = conn.execute(t.users.insert().values(**values)).inserted_primary_key
        if key is None:
            raise AccessError(f"user {name!r} was not stored")
        return int(key[0])

    def _checked_hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise AccessError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
        return hash_password(password)

    def user(self, username: str) -> RowMapping:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.users).where(t.users.c.username == username)).mappings()
            found = row.first()
        if found is None:
            raise AccessError(f"user {username!r} not found")
        return found

    def set_password(self, username: str, password: str) -> None:
        """New password; every open session of the user ends with the old one."""
        hashed = self._checked_hash(password)
        user_id = self.user(username)["id"]
        with self.engine.begin() as conn:
            conn.execute(
                t.users.update().where(t.users.c.id == user_id).values(password_hash=hashed)
            )
            conn.execute(t.web_sessions.delete().where(t.web_sessions.c.user_id == user_id))

    def ensure_user(self, username: str, role: Role, password: str) -> bool:
        """Create the user if missing, else reset its role and password; True if created."""
        try:
            existing = self.user(username)
        except AccessError:
            self.create_user(username, role, password)
            return True
        with self.engine.begin() as conn:
            conn.execute(
                t.users.update()
                .where(t.users.c.id == existing["id"])
                .values(role=role.value, password_hash=self._checked_hash(password), active=True)
            )
        return False

    def authenticate(self, username: str, password: str) -> Principal | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(t.users).where(
                        t.users.c.username == username, t.users.c.active.is_(True)
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            # Same work for a missing user, so timing does not reveal which names exist.
            verify_password(password, _DUMMY_HASH)
            return None
        return _principal(row) if verify_password(password, row["password_hash"]) else None

    # -- API tokens -----------------------------------------------------------------------

    def issue_token(self, username: str, name: str, expires_at: datetime | None = None) -> str:
        """A new bearer token for the user; the clear value is returned once, only its
        digest is stored."""
        user_id = self.user(username)["id"]
        token = f"smmc_{secrets.token_urlsafe(32)}"
        with self.engine.begin() as conn:
            conn.execute(
                t.api_tokens.insert().values(
                    user_id=user_id,
                    name=name[:64],
                    token_hash=token_digest(token),
                    expires_at=expires_at,
                )
            )
        return token

    def tokens(self, username: str) -> Sequence[RowMapping]:
        user_id = self.user(username)["id"]
        c = t.api_tokens.c
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(c.id, c.name, c.created_at, c.expires_at, c.revoked_at)
                    .where(c.user_id == user_id)
                    .order_by(c.id)
                ).mappings()
            )

    def revoke_token(self, username: str, token_id: int) -> None:
        user_id = self.user(username)["id"]
        c = t.api_tokens.c
        with self.engine.begin() as conn:
            done = conn.execute(
                t.api_tokens.update()
                .where(c.id == token_id, c.user_id == user_id, c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            )
        if done.rowcount != 1:
            raise AccessError(f"no active token {token_id} for {username!r}")

    def principal_for_token(self, token: str) -> Principal | None:
        c = t.api_tokens.c
        now = self.clock()
        with self.engine.begin() as conn:
            row = (
                conn.execute(
                    sa.select(t.users, c.id.label("token_id"), c.expires_at, c.revoked_at)
                    .join(t.api_tokens, c.user_id == t.users.c.id)
                    .where(c.token_hash == token_digest(token), t.users.c.active.is_(True))
                )
                .mappings()
                .first()
            )
            if row is None or row["revoked_at"] is not None:
                return None
            if row["expires_at"] is not None and row["expires_at"] <= now:
                return None
            conn.execute(
                t.api_tokens.update().where(c.id == row["token_id"]).values(last_used_at=now)
            )
        return _principal(row)

    # -- web sessions ---------------------------------------------------------------------

    def open_session(self, principal: Principal, ttl: timedelta = SESSION_TTL) -> tuple[str, str]:
        """A new session: (cookie value, CSRF token)."""
        cookie = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                t.web_sessions.insert().values(
                    user_id=principal.user_id,
                    token_hash=token_digest(cookie),
                    csrf_token=csrf,
                    expires_at=self.clock() + ttl,
                )
            )
        return cookie, csrf

    def session(self, cookie: str) -> WebSession | None:
        s = t.web_sessions.c
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(t.users, s.csrf_token, s.expires_at)
                    .join(t.web_sessions, s.user_id == t.users.c.id)
                    .where(s.token_hash == token_digest(cookie), t.users.c.active.is_(True))
                )
                .mappings()
                .first()
            )
        if row is None or row["expires_at"] <= self.clock():
            return None
        return WebSession(_principal(row), row["csrf_token"])

    def close_session(self, cookie: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                t.web_sessions.delete().where(t.web_sessions.c.token_hash == token_digest(cookie))
            )

    # -- stakeholder grants (I8) ----------------------------------------------------------

    def grant(self, username: str, service_point: str) -> None:
        user_id = self.user(username)["id"]
        sp = t.service_points.c
        with self.engine.begin() as conn:
            sp_id = conn.execute(sa.select(sp.id).where(sp.name == service_point)).scalar()
            if sp_id is None:
                raise AccessError(f"service point {service_point!r} not found")
            g = t.stakeholder_grants.c
            exists = conn.execute(
                sa.select(g.id).where(g.user_id == user_id, g.service_point_id == sp_id)
            ).first()
            if exists is None:
                conn.execute(
                    t.stakeholder_grants.insert().values(user_id=user_id, service_point_id=sp_id)
                )

    def granted_service_points(self, user_id: int) -> frozenset[str]:
        g = t.stakeholder_grants.c
        with self.engine.connect() as conn:
            names = conn.execute(
                sa.select(t.service_points.c.name)
                .join(t.stakeholder_grants, g.service_point_id == t.service_points.c.id)
                .where(g.user_id == user_id)
            ).scalars()
            return frozenset(names)

    # -- audit ----------------------------------------------------------------------------

    def audit(
        self,
        principal: Principal | None,
        action: str,
        target: str | None = None,
        detail: str | None = None,
    ) -> None:
        """One who/what/when row; callers log every write and every I8 data access."""
        with self.engine.begin() as conn:
            conn.execute(
                t.audit_log.insert().values(
                    at=self.clock(),
                    user_id=principal.user_id if principal else None,
                    username=principal.username if principal else None,
                    action=action[:64],
                    target=target[:255] if target else None,
                    detail=detail,
                )
            )

    def audit_rows(self, limit: int = 100) -> Sequence[RowMapping]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(t.audit_log).order_by(t.audit_log.c.id.desc()).limit(limit)
                ).mappings()
            )


_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
