"""Provisioning import benchmark: a generated fleet (PODs, meters, links, concentrators)
through `smmc.store.provisioning.import_file`, on SQLite and on PostgreSQL.

    python benchmarks/provisioning.py --meters 100000 --backend both

Each backend runs in its own process so its peak resident memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from smmc.domain.geo import CHILE
from smmc.sim.fleet import default_fleet
from smmc.sim.provisioning_files import write_provisioning_files
from smmc.store.db import create_engine
from smmc.store.migrate import upgrade
from smmc.store.provisioning import ImportOptions, import_file, import_order
from smmc.store.secrets import SecretBox

POSTGRES_ADMIN_URL = os.environ.get(
    "SMMC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
METERS_PER_CONCENTRATOR = 100


def run_one(backend: str, meters: int, workdir: Path) -> dict[str, object]:
    fleet = default_fleet().sized(
        concentrators=max(1, meters // METERS_PER_CONCENTRATOR),
        meters_per_concentrator=min(meters, METERS_PER_CONCENTRATOR),
        point_to_point=0,
    )
    files = write_provisioning_files(fleet, workdir / "files")
    database = None
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
    else:
        database = f"smmc_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        url = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{database}"
    engine = create_engine(url)
    upgrade(engine)
    box = SecretBox(os.urandom(32))
    options = ImportOptions(CHILE, workdir / "reports")
    per_file = {}
    started = time.perf_counter()
    for path in import_order(list(files.values())):
        t0 = time.perf_counter()
        result = import_file(engine, box, path, options)
        if result.exit_code:
            raise SystemExit(f"{path.name}: {result.fatal or result.issues[:3]}")
        per_file[result.template.kind.value if result.template else path.name] = {
            "rows": result.rows_total,
            "seconds": round(time.perf_counter() - t0, 2),
        }
    total = time.perf_counter() - started
    engine.dispose()
    if database:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
    return {
        "backend": backend,
        "meters": meters,
        "seconds": round(total, 1),
        "rows_per_second": round(sum(f["rows"] for f in per_file.values()) / total),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "files": per_file,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run_one(args.backend, args.meters, Path(tmp))))
        return
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(
        f"# provisioning import, {args.meters} meters — {platform.node()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    for backend in backends:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--backend",
                backend,
                "--meters",
                str(args.meters),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print(
            f"{backend:10} {result['seconds']:7.1f} s  {result['rows_per_second']:>8} rows/s  "
            f"peak RSS {result['peak_rss_mib']} MiB"
        )
        for kind, info in result["files"].items():
            print(f"    {kind:26} {info['rows']:>7} rows {info['seconds']:7.2f} s")


if __name__ == "__main__":
    main()
