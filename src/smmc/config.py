"""Runtime settings, read from the environment once per process.

Every setting has a default that makes `smmc demo` work on a fresh clone: an SQLite file
under ./var and a master key file created next to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_VAR_DIR = Path("var")


class SettingError(ValueError):
    """An environment variable with a value that cannot be used (names it and why)."""


def _int(env: os._Environ[str] | dict[str, str], name: str, default: int, low: int) -> int:
    text = env.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingError(f"{name}: {text!r} is not an integer") from None
    if value < low:
        raise SettingError(f"{name}: {value} is below {low}")
    return value


def _flag(env: os._Environ[str] | dict[str, str], name: str) -> bool:
    text = env.get(name, "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise SettingError(f"{name}: {text!r} is not a boolean (true/false)")


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    """Delivery of the CIM outbox (issue 8): backend, broker, queues, retries."""

    backend: str = "embedded"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    queue_high: str = "smmc.cim.high"
    queue_normal: str = "smmc.cim.normal"
    max_attempts: int = 10
    batch_size: int = 1000
    callback: bool = False
    source: str = "SMMC"
    codes_file: Path | None = None

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str]) -> OutboxSettings:
        env = environ
        default = cls()
        backend = env.get("SMMC_OUTBOX_BACKEND", "embedded").strip().lower()
        if backend not in ("embedded", "rabbitmq"):
            raise SettingError(f"SMMC_OUTBOX_BACKEND: {backend!r} is not embedded or rabbitmq")
        codes = env.get("SMMC_CIM_CODES")
        return cls(
            backend=backend,
            amqp_url=env.get("SMMC_AMQP_URL", default.amqp_url),
            queue_high=env.get("SMMC_QUEUE_HIGH", default.queue_high),
            queue_normal=env.get("SMMC_QUEUE_NORMAL", default.queue_normal),
            max_attempts=_int(env, "SMMC_OUTBOX_MAX_ATTEMPTS", default.max_attempts, 1),
            batch_size=_int(env, "SMMC_OUTBOX_BATCH", default.batch_size, 1),
            callback=_flag(env, "SMMC_OUTBOX_CALLBACK"),
            source=env.get("SMMC_CIM_SOURCE", default.source),
            codes_file=Path(codes) if codes else None,
        )


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    var_dir: Path
    secret_key: str | None
    secret_key_file: Path
    service_area: str
    outbox: OutboxSettings = field(default_factory=OutboxSettings)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        var_dir = Path(env.get("SMMC_VAR_DIR", str(DEFAULT_VAR_DIR)))
        return cls(
            database_url=env.get("SMMC_DATABASE_URL", f"sqlite:///{var_dir / 'smmc.db'}"),
            var_dir=var_dir,
            secret_key=env.get("SMMC_SECRET_KEY") or None,
            secret_key_file=Path(env.get("SMMC_SECRET_KEY_FILE", str(var_dir / "secret.key"))),
            service_area=env.get("SMMC_SERVICE_AREA", "chile"),
            outbox=OutboxSettings.from_env(env),
        )
