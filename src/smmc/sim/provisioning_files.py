"""The seven provisioning CSVs of a simulated fleet, so the head-end imports exactly the
simulated ground truth through the same code path as the utility's own files."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from smmc.domain.provisioning import TEMPLATE_BY_KIND, TemplateKind

# Comunas of the Santiago metropolitan area with an approximate centre (latitude, longitude).
COMUNAS: tuple[tuple[str, float, float], ...] = (
    ("Santiago", -33.4378, -70.6505),
    ("Providencia", -33.4314, -70.6093),
    ("Las Condes", -33.4087, -70.5670),
    ("Ñuñoa", -33.4569, -70.5979),
    ("Maipú", -33.5110, -70.7580),
    ("La Florida", -33.5227, -70.5980),
    ("Puente Alto", -33.6117, -70.5758),
    ("Recoleta", -33.4055, -70.6397),
    ("Independencia", -33.4160, -70.6650),
    ("San Miguel", -33.4970, -70.6510),
    ("Estación Central", -33.4590, -70.6990),
    ("Peñalolén", -33.4860, -70.5430),
)


@dataclass(frozen=True, slots=True)
class FleetShape:
    concentrators: int = 5
    meters_per_concentrator: int = 20
    point_to_point_meters: int = 5
    net_billing_share: float = 0.1
    polyphase_share: float = 0.15
    seed: int = 1
    first_point_to_point_host: str = "127.0.1.1"
    point_to_point_port: int = 4059


def meter_serial(index: int) -> str:
    return f"UAAEEDN{17700000000 + index:011d}"


def concentrator_name(index: int) -> str:
    return f"TD-{10000 + index}"


def _write(path: Path, kind: TemplateKind, rows: Iterator[tuple[object, ...]]) -> int:
    template = TEMPLATE_BY_KIND[kind]
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(template.columns)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _host(first: str, offset: int) -> str:
    a, b, c, d = (int(part) for part in first.split("."))
    value = (b << 16 | c << 8 | d) + offset
    return f"{a}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def write_provisioning_files(shape: FleetShape, out_dir: Path) -> dict[TemplateKind, Path]:
    """Write the seven templates (`;`-separated, decimal point) and return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(shape.seed)
    sites = []
    for i in range(shape.concentrators):
        comuna, lat, lon = COMUNAS[i % len(COMUNAS)]
        sites.append((comuna, lat + rng.uniform(-0.02, 0.02), lon + rng.uniform(-0.02, 0.02)))
    meters: list[tuple[str, str, int | None, int, float, float, str]] = []
    index = 0
    for c, (comuna, lat, lon) in enumerate(sites):
        for node in range(shape.meters_per_concentrator):
            meters.append(
                (
                    meter_serial(index),
                    comuna,
                    c,
                    node + 2,
                    lat + rng.uniform(-0.004, 0.004),
                    lon + rng.uniform(-0.004, 0.004),
                    rng.choice("RST"),
                )
            )
            index += 1
    for p in range(shape.point_to_point_meters):
        comuna, lat, lon = COMUNAS[p % len(COMUNAS)]
        meters.append(
            (
                meter_serial(index),
                comuna,
                None,
                p,
                lat + rng.uniform(-0.03, 0.03),
                lon + rng.uniform(-0.03, 0.03),
                "R",
            )
        )
        index += 1
    flags = [
        (rng.random() < shape.net_billing_share, rng.random() < shape.polyphase_share)
        for _ in meters
    ]
    keys = [(rng.randbytes(16).hex().upper(), rng.randbytes(16).hex().upper()) for _ in meters]

    paths = {
        kind: out_dir / f"provisioningTemplate ({TEMPLATE_BY_KIND[kind].number}).csv"
        for kind in TemplateKind
    }
    _write(
        paths[TemplateKind.TRANSFORMER],
        TemplateKind.TRANSFORMER,
        (
            (f"TR-{10000 + i}", f"SE-{sites[i][0]}", f"Transformer of {concentrator_name(i)}")
            for i in range(shape.concentrators)
        ),
    )
    _write(
        paths[TemplateKind.CONCENTRATOR_SITE],
        TemplateKind.CONCENTRATOR_SITE,
        (
            (
                concentrator_name(i),
                f"Concentrator {i}",
                f"Calle {i} 100",
                comuna,
                f"{lat:.6f}",
                f"{lon:.6f}",
                550,
                "Pacific SA Standard Time",
                comuna,
            )
            for i, (comuna, lat, lon) in enumerate(sites)
        ),
    )
    _write(
        paths[TemplateKind.CONCENTRATOR_COMPOSITION],
        TemplateKind.CONCENTRATOR_COMPOSITION,
        (
            (
                concentrator_name(i),
                f"21LVM50A{10000000 + i:08d}",
                "Wake_up_SMMWeb_COM",
                "profile_concentrator_cedata",
                f"SE-{sites[i][0]}",
                f"TR-{10000 + i}",
                2490000 + i,
                895602810000000 + i,
                "ethernet01",
            )
            for i in range(shape.concentrators)
        ),
    )
    _write(
        paths[TemplateKind.CONCENTRATOR_ATTRIBUTES],
        TemplateKind.CONCENTRATOR_ATTRIBUTES,
        (
            (
                f"21LVM50A{10000000 + i:08d}",
                829614000000 + i,
                f"ppp{i}",
                rng.randbytes(16).hex().upper(),
                f"maa{i}",
                rng.randbytes(16).hex().upper(),
                rng.randbytes(16).hex().upper(),
                "sim",
                "127.0.0.1",
                20000 + i,
            )
            for i in range(shape.concentrators)
        ),
    )
    _write(
        paths[TemplateKind.SERVICE_POINT],
        TemplateKind.SERVICE_POINT,
        (
            (
                f"POD{3000000 + n}",
                f"Pasaje {n}",
                comuna,
                f"{lat:.6f}",
                f"{lon:.6f}",
                550,
                "sim",
                "FALSE",
                comuna,
                "TRUE" if flags[n][0] else "FALSE",
                "BT1",
                6.0,
                "connected",
            )
            for n, (_, comuna, _, _, lat, lon, _) in enumerate(meters)
        ),
    )
    _write(
        paths[TemplateKind.METER],
        TemplateKind.METER,
        (
            (
                serial,
                serial,
                f"{0x850555000000 + n:012X}",
                11,
                "L01207",
                "Electric",
                "sim",
                keys[n][0],
                keys[n][1],
                "polyphase" if flags[n][1] else "monophase",
                phase,
                concentrator_name(c) if c is not None else "",
                node if c is not None else "",
                "" if c is not None else _host(shape.first_point_to_point_host, node),
                "" if c is not None else shape.point_to_point_port,
            )
            for n, (serial, _, c, node, _, _, phase) in enumerate(meters)
        ),
    )
    _write(
        paths[TemplateKind.METER_LINK],
        TemplateKind.METER_LINK,
        ((serial, f"POD{3000000 + n}", "") for n, (serial, *_rest) in enumerate(meters)),
    )
    return paths
