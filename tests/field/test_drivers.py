"""Drivers against the simulator over real TCP: values, faults → catalog texts, counters."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from field_sim import NOW, sim_fleet
from sqlalchemy.engine import Engine

from smmc.dlms.obis import Obis
from smmc.domain.assets import Secret
from smmc.domain.error_catalog import ErrorKey
from smmc.field.drivers import COLLECTED_LOAD_PROFILE, LOAD_PROFILE
from smmc.field.errors import FieldFailure
from smmc.store import tables as t
from smmc.store.secrets import SecretBox

TOTAL = Obis(1, 0, 1, 8, 0, 255)
TIERS = tuple(Obis(1, 0, 1, 8, tier, 255) for tier in range(1, 7))


async def test_point_to_point_and_gateway_reads_return_the_simulator_values(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(db, secret_box, tmp_path) as fleet:
        drivers = fleet.drivers()
        dc = fleet.dc()
        serials = [fleet.p2p_serials()[0], fleet.gateway_serials(dc)[1]]
        for serial in serials:
            index = next(i for i in range(len(fleet.plan)) if fleet.plan.meter(i).serial == serial)
            model = fleet.runner.meters.model(index)
            expected = model.registers(fleet.clock.now())
            window = (NOW - dt.timedelta(hours=2), NOW - dt.timedelta(hours=1))
            async with drivers.meter(fleet.meter_id(serial)) as meter:
                total, *tiers = await meter.registers((TOTAL, *TIERS))
                clock = await meter.clock()
                rows = await meter.profile(LOAD_PROFILE, *window)
                words = await meter.status_words()
            assert total.value == expected.active_import.total
            assert [r.value for r in tiers] == list(expected.active_import.tiers)
            assert clock == model.meter_time(fleet.clock.now())
            captured = model.load_profile(*window)
            assert len(rows) == len(captured) == 4  # 13:15 … 14:00 UTC
            assert [row[2] for row in rows] == [row.active_import_wh for row in captured]
            assert len(words) == 4


async def test_concentrator_management_node_table_and_clock(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(db, secret_box, tmp_path) as fleet:
        dc = fleet.dc()
        async with fleet.drivers().concentrator(fleet.concentrator_id(dc.spec.name)) as session:
            nodes = await session.node_table()
            word = await session.status_word()
            start = dc.now() - dt.timedelta(hours=2)
            collected = await session.collected(
                COLLECTED_LOAD_PROFILE, start, start + dt.timedelta(minutes=59)
            )
            wanted = dc.now() + dt.timedelta(minutes=5)
            await session.set_clock(wanted)
        # Four 15-minute captures per meter in the hour, each row naming its meter.
        assert len(collected) == 4 * len(dc.nodes)
        assert {row[1] for row in collected} == {node.serial for node in dc.nodes.values()}
        assert {(n.serial, n.node_address) for n in nodes} == {
            (node.serial, address) for address, node in dc.nodes.items()
        }
        assert word == dc.status_word()
        assert abs((dc.now() - wanted).total_seconds()) < 1


FAULTS = {
    "unreachable": ("[GATEWAY_ASSOCIATE] [TB_ACK_21] NODE NOT REACHABLE AGENT", True),
    "repeater": ("[GATEWAY_ASSOCIATE] [TB_ACK_4", True),
    "decommissioned": ("CE not present in the table", False),
    "modem": ("Transaction can't be handled due to Modem PLC Failure", True),
    "procedure": ("TB procedure not enable", False),
}


async def test_gateway_faults_map_to_the_catalog_text(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(db, secret_box, tmp_path, per_concentrator=4, point_to_point=0) as fleet:
        dc = fleet.dc()
        drivers = fleet.drivers()
        nodes = [node for _, node in sorted(dc.nodes.items())]
        for fault, node in zip(FAULTS, [*nodes[:3], nodes[3], nodes[3]], strict=True):
            if fault == "unreachable":
                node.reachable = False
            elif fault == "repeater":
                node.repeater_failed = True
                node.repeater_level = max(node.repeater_level, 1)
            elif fault == "decommissioned":
                node.commissioned = False
            elif fault == "modem":
                dc.modem_failed = True
            else:
                dc.modem_failed = False
                dc.procedure_enabled = False
            expected, retryable = FAULTS[fault]
            with pytest.raises(FieldFailure) as caught:
                async with drivers.meter(fleet.meter_id(node.serial)) as meter:
                    await meter.clock()
            assert str(caught.value).startswith(expected), (fault, str(caught.value))
            if fault == "repeater":
                assert str(caught.value).endswith(f"REPEATER {node.repeater_level} FAILURE")
            assert caught.value.retryable is retryable, fault


async def test_concentrator_down_is_unreachable_open_socket_failed(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(db, secret_box, tmp_path, point_to_point=0) as fleet:
        dc = fleet.dc()
        serial = fleet.gateway_serials(dc)[0]
        await dc.power_off()
        drivers = fleet.drivers()
        with pytest.raises(FieldFailure) as via_gateway:
            async with drivers.meter(fleet.meter_id(serial)) as meter:
                await meter.clock()
        with pytest.raises(FieldFailure) as management:
            async with drivers.concentrator(fleet.concentrator_id(dc.spec.name)):
                pass
    for caught in (via_gateway, management):
        assert str(caught.value) == "Concentrator is unreachable [Open socket is failed]"
        assert caught.value.error.key is ErrorKey.CONCENTRATOR_SOCKET_FAILED
        assert caught.value.retryable


async def test_wrong_keys_give_wrong_key(db: Engine, secret_box: SecretBox, tmp_path: Path) -> None:
    async with sim_fleet(db, secret_box, tmp_path) as fleet:
        serials = [fleet.p2p_serials()[0], fleet.gateway_serials(fleet.dc())[0]]
        for serial in serials:
            with db.begin() as conn:
                conn.execute(
                    t.meters.update()
                    .where(t.meters.c.serial_number == serial)
                    .values(
                        encryption_key_enc=_sealed(secret_box, serial, "encryption_key"),
                        authentication_key_enc=_sealed(secret_box, serial, "authentication_key"),
                    )
                )
            with pytest.raises(FieldFailure) as caught:
                async with fleet.drivers().meter(fleet.meter_id(serial)) as meter:
                    await meter.clock()
            assert caught.value.error.key is ErrorKey.WRONG_KEY, str(caught.value)
            assert str(caught.value).startswith("Wrong Key")
            assert not caught.value.retryable


def _sealed(box: SecretBox, serial: str, which: str) -> str:
    return box.seal(Secret("00" * 16), f"meters:{serial}:{which}")


async def test_counters_persist_and_resynchronise_once(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(db, secret_box, tmp_path) as fleet:
        serial = fleet.p2p_serials()[0]
        meter_id = fleet.meter_id(serial)
        drivers = fleet.drivers()
        counters = t.invocation_counters.c

        def stored() -> tuple[int, int | None]:
            with db.connect() as conn:
                row = conn.execute(
                    sa.select(counters.next_send, counters.last_received).where(
                        counters.device_id == meter_id
                    )
                ).one()
            return int(row.next_send), row.last_received

        block = drivers.counters.block
        used: list[int] = []
        for _ in range(2):  # one block serves both sessions of this worker
            async with drivers.meter(meter_id) as meter:
                used.append(meter.client.invocation_counter)
                await meter.clock()
        assert stored()[0] == 1 + block
        assert used[0] < used[1] < 1 + block
        last = stored()[1]
        assert last is not None
        assert last > 0
        # Another worker (a restart) reserves the next block: no counter is used twice.
        other = fleet.drivers()
        async with other.meter(meter_id) as meter:
            assert meter.client.invocation_counter >= 1 + block
            await meter.clock()
        assert stored()[0] == 1 + 2 * block
        # The stored copy of the meter's counter runs ahead (a reset meter): one resync.
        with db.begin() as conn:
            conn.execute(
                t.invocation_counters.update()
                .where(counters.device_id == meter_id)
                .values(last_received=10**9)
            )
        fresh = fleet.drivers()
        async with fresh.meter(meter_id) as meter:
            await meter.clock()
        assert fresh.resynchronised == 1
        after = stored()[1]
        assert after is not None
        assert after < 10**9
