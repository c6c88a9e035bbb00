"""Runtime settings, read from the environment once per process.

Every setting has a default that makes `smmc demo` work on a fresh clone: an SQLite file
under ./var and a master key file created next to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_VAR_DIR = Path("var")


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    var_dir: Path
    secret_key: str | None
    secret_key_file: Path
    service_area: str

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
        )
