"""The seven provisioning CSVs of a simulated fleet, so the head-end imports exactly the
simulated ground truth through the same code path as the utility's own files."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from smmc.domain.provisioning import TEMPLATE_BY_KIND, TemplateKind
from smmc.sim.fleet import (
    Fleet,
    FleetPlan,
    concentrator_name,
    meter_serial,
)

__all__ = [
    "concentrator_name",
    "meter_serial",
    "write_provisioning_files",
]


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


def write_provisioning_files(fleet: Fleet | FleetPlan, out_dir: Path) -> dict[TemplateKind, Path]:
    """Write the seven templates (`;`-separated, decimal point) and return their paths.

    Every value comes from the fleet plan the simulator itself serves, so the head-end
    imports exactly the simulated ground truth.
    """
    plan = fleet.build() if isinstance(fleet, Fleet) else fleet
    out_dir.mkdir(parents=True, exist_ok=True)
    dcs = plan.concentrators
    paths = {
        kind: out_dir / f"provisioningTemplate ({TEMPLATE_BY_KIND[kind].number}).csv"
        for kind in TemplateKind
    }
    _write(
        paths[TemplateKind.TRANSFORMER],
        TemplateKind.TRANSFORMER,
        ((dc.transformer, dc.substation, f"Transformer of {dc.name}") for dc in dcs),
    )
    _write(
        paths[TemplateKind.CONCENTRATOR_SITE],
        TemplateKind.CONCENTRATOR_SITE,
        (
            (
                dc.name,
                f"Concentrator {dc.index}",
                f"Calle {dc.index} 100",
                dc.comuna,
                f"{dc.latitude:.6f}",
                f"{dc.longitude:.6f}",
                550,
                dc.windows_time_zone,
                dc.comuna,
            )
            for dc in dcs
        ),
    )
    _write(
        paths[TemplateKind.CONCENTRATOR_COMPOSITION],
        TemplateKind.CONCENTRATOR_COMPOSITION,
        (
            (
                dc.name,
                dc.serial,
                "Wake_up_SMMWeb_COM",
                "profile_concentrator_cedata",
                dc.substation,
                dc.transformer,
                2490000 + dc.index,
                895602810000000 + dc.index,
                "ethernet01",
            )
            for dc in dcs
        ),
    )
    _write(
        paths[TemplateKind.CONCENTRATOR_ATTRIBUTES],
        TemplateKind.CONCENTRATOR_ATTRIBUTES,
        (
            (
                dc.serial,
                829614000000 + dc.index,
                f"ppp{dc.index}",
                dc.ppp_password,
                f"maa{dc.index}",
                dc.maa_password,
                dc.k2_password,
                "sim",
                dc.host,
                dc.port,
            )
            for dc in dcs
        ),
    )
    _write(
        paths[TemplateKind.SERVICE_POINT],
        TemplateKind.SERVICE_POINT,
        (
            (
                m.pod,
                f"Pasaje {m.index}",
                m.comuna,
                f"{m.latitude:.6f}",
                f"{m.longitude:.6f}",
                550,
                "sim",
                "FALSE",
                m.comuna,
                "TRUE" if m.net_billing else "FALSE",
                "BT1",
                6.0,
                "connected",
                "" if m.concentrator is None else dcs[m.concentrator].transformer,
            )
            for m in plan.meters()
        ),
    )
    _write(
        paths[TemplateKind.METER],
        TemplateKind.METER,
        (
            (
                m.serial,
                m.serial,
                f"{0x850555000000 + m.index:012X}",
                11,
                "L01207",
                "Electric",
                "sim",
                m.encryption_key.hex().upper(),
                m.authentication_key.hex().upper(),
                "polyphase" if m.polyphase else "monophase",
                m.phase,
                "" if m.concentrator is None else dcs[m.concentrator].name,
                "" if m.node_address is None else m.node_address,
                m.host or "",
                "" if m.port is None else m.port,
            )
            for m in plan.meters()
        ),
    )
    _write(
        paths[TemplateKind.METER_LINK],
        TemplateKind.METER_LINK,
        ((m.serial, m.pod, "") for m in plan.meters()),
    )
    return paths
