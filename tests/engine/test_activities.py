"""The field executors run by a real worker against the simulator over real TCP."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "field"))  # the shared harness

from field_sim import SimFleet, sim_fleet

from smmc.domain.work_orders import ActivityType, PolicyBook, State, load_policies
from smmc.engine.activities import FieldContext, register_field_executors
from smmc.engine.executors import ExecutorRegistry
from smmc.engine.worker import Worker, WorkerConfig
from smmc.store import tables as t
from smmc.store.secrets import SecretBox
from smmc.store.work_orders import TargetRef, WorkOrderQueue

FAST = """
{activity}:
  backoff_base: 0.3
  backoff_cap: 0.3
  backoff_jitter: 0.0
  max_attempts: 3
"""


def _policies(tmp_path: Path, *activities: ActivityType) -> PolicyBook:
    path = tmp_path / "policies.yaml"
    path.write_text("".join(FAST.format(activity=a.value) for a in activities))
    return load_policies(path)


class FieldRun:
    """A queue, a worker with the field executors and a way to run orders to their end."""

    def __init__(self, fleet: SimFleet, policies: PolicyBook | None = None) -> None:
        self.fleet = fleet
        self.queue = WorkOrderQueue(fleet.engine, policies)
        registry = ExecutorRegistry()
        self.drivers = fleet.drivers(gateway_timeout=5.0, timeout=2.0)
        register_field_executors(registry, FieldContext(self.drivers, now=fleet.clock.now))
        self.worker = Worker(
            self.queue, registry, WorkerConfig(name="test-worker", poll_interval=0.05)
        )

    def submit(self, activity: ActivityType, serial: str | None = None, **kwargs: Any) -> int:
        target = TargetRef(meter=serial) if serial else TargetRef(concentrator=kwargs.pop("dc"))
        result = self.queue.submit(activity, [target], special=True, **kwargs)
        assert result.accepted == 1, result.rejected
        assert result.batch_id is not None
        with self.fleet.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(t.work_orders.c.id).where(t.work_orders.c.batch_id == result.batch_id)
                ).scalar_one()
            )

    async def finish(self, order_id: int, timeout: float = 20.0) -> dict[str, Any]:
        """Run the worker until the order is final (retries wait for their backoff)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            await self.worker.run_until_idle()
            row = dict(self.queue.get(order_id))
            if State(row["state"]) not in (State.NEW, State.PENDING, State.RETRY, State.RUNNING):
                return row
            assert asyncio.get_running_loop().time() < deadline, row
            await asyncio.sleep(0.05)


def _index(fleet: SimFleet, serial: str) -> int:
    return next(i for i in range(len(fleet.plan)) if fleet.plan.meter(i).serial == serial)


def _events(db: Engine, order_id: int) -> list[dict[str, Any]]:
    e = t.work_order_events.c
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(t.work_order_events).where(e.work_order_id == order_id).order_by(e.id)
        )
        return [dict(row) for row in rows.mappings()]


def _hpe(db: Engine, serial: str) -> list[tuple[str, str]]:
    """The events layer's work-order results of one meter (code, priority)."""
    e = t.events.c
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(e.code, e.priority)
            .where(e.device == serial, e.source == "work-order")
            .order_by(e.id)
        )
        return [(row.code, row.priority) for row in rows]


async def test_disconnect_stops_consumption_and_connect_restores_it(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(db, secret_box, tmp_path, point_to_point=1) as fleet:
        run = FieldRun(fleet)
        serials = [fleet.p2p_serials()[0], fleet.gateway_serials(fleet.dc())[0]]
        for serial in serials:
            model = fleet.runner.meters.model(_index(fleet, serial))
            order = run.submit(ActivityType.DISCONNECT, serial, reason="non_payment")
            row = await run.finish(order)
            assert row["state"] == State.COMPLETED.value, row["error_text"]
            assert not model.breaker_closed(fleet.clock.now())
            before = model.registers(fleet.clock.now()).active_import.total
            fleet.wall.advance(dt.timedelta(hours=2))
            assert model.registers(fleet.clock.now()).active_import.total == before
            [event] = _events(db, order)
            assert (event["event_type"], event["priority"]) == ("3.31.17.68", "high")
            assert event["breaker_state"] == 0
            assert ("3.31.17.68", "high") in _hpe(db, serial)  # the events layer's record

            order = run.submit(ActivityType.CONNECT, serial, reason="after_payment")
            row = await run.finish(order)
            assert row["state"] == State.COMPLETED.value, row["error_text"]
            assert model.breaker_closed(fleet.clock.now())
            restored = model.registers(fleet.clock.now()).active_import.total
            fleet.wall.advance(dt.timedelta(hours=2))
            assert model.registers(fleet.clock.now()).active_import.total > restored
            [event] = _events(db, order)
            assert (event["event_type"], event["breaker_state"]) == ("3.31.17.42", 1)


async def test_meter_sync_corrects_a_drifted_clock(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(db, secret_box, tmp_path, point_to_point=1) as fleet:
        run = FieldRun(fleet)
        now = fleet.clock.now()
        for serial in (fleet.p2p_serials()[0], fleet.gateway_serials(fleet.dc())[0]):
            model = fleet.runner.meters.model(_index(fleet, serial))
            model.set_clock(now, now + dt.timedelta(minutes=7))
            assert model.clock_error(now) >= dt.timedelta(minutes=6)
            row = await run.finish(run.submit(ActivityType.METER_SYNC, serial))
            assert row["state"] == State.COMPLETED.value, row["error_text"]
            assert abs(model.clock_error(fleet.clock.now())) < dt.timedelta(seconds=2)
            assert '"deviation_s": 42' in row["result"]


async def test_reading_returns_the_simulator_values_and_outage_check_pings(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(db, secret_box, tmp_path, point_to_point=1) as fleet:
        run = FieldRun(fleet)
        serial = fleet.gateway_serials(fleet.dc())[1]
        model = fleet.runner.meters.model(_index(fleet, serial))
        start = fleet.clock.now() - dt.timedelta(hours=1)
        order = run.submit(
            ActivityType.READING,
            serial,
            payload={
                "registers": ["1.0.1.8.0.255", "1.0.2.8.0.255"],
                "load_profile": {"from": start.isoformat(), "to": fleet.clock.now().isoformat()},
                "measurands": True,
            },
        )
        row = await run.finish(order)
        assert row["state"] == State.COMPLETED.value, row["error_text"]
        expected = model.registers(fleet.clock.now())
        assert f'"value": {expected.active_import.total}' in row["result"]
        assert f'"value": {expected.active_export.total}' in row["result"]
        assert '"measurands"' in row["result"]
        assert [e["event_type"] for e in _events(db, order)] == ["3.21.87.30"]
        for activity in (ActivityType.OUTAGE_CHECK, ActivityType.STATUS_WORD_READ):
            row = await run.finish(run.submit(activity, serial))
            assert row["state"] == State.COMPLETED.value, row["error_text"]


async def test_faults_retry_with_backoff_then_fail_with_the_catalog_text(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(db, secret_box, tmp_path, point_to_point=0) as fleet:
        run = FieldRun(fleet, _policies(tmp_path, ActivityType.READING, ActivityType.MASTER_SYNC))
        dc = fleet.dc()
        node = sorted(dc.nodes.values(), key=lambda n: n.node_address)[0]
        node.reachable = False
        order = run.submit(ActivityType.READING, node.serial)
        row = await run.finish(order)
        text = "[GATEWAY_ASSOCIATE] [TB_ACK_21] NODE NOT REACHABLE AGENT"
        assert row["state"] == State.FAILED.value
        assert row["error_text"] == text
        attempts = run.queue.attempts(order)
        assert [a["error_text"] for a in attempts] == [text] * 3
        gaps = [
            (later["started_at"] - earlier["ended_at"]).total_seconds()
            for earlier, later in itertools.pairwise(attempts)
        ]
        assert all(gap >= 0.29 for gap in gaps), gaps  # the backoff was waited
        [field_order] = [f for f in run.queue.field_work_orders() if f["work_order_id"] == order]
        assert field_order["reason"] == text
        assert [e["event_type"] for e in _events(db, order)] == ["3.21.87.85"]
        assert _hpe(db, node.serial) == [("3.21.87.85", "high")]

        # The DC down: the seed's exact text.
        await dc.power_off()
        row = await run.finish(run.submit(ActivityType.MASTER_SYNC, dc=dc.spec.name))
        assert row["state"] == State.FAILED.value
        assert row["error_text"] == "Concentrator is unreachable [Open socket is failed]"


@asynccontextmanager
async def _lossy_proxy(
    host: str, port: int, lose_reply: Callable[[bytes], bool]
) -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP relay that forwards a request for which ``lose_reply`` is true to the meter,
    then drops the connection before the reply comes back (once)."""
    lost: list[int] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, watch: bool) -> None:
        buffer = b""
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
                if not watch or lost:
                    continue
                buffer += data
                while len(buffer) >= 8:
                    size = int.from_bytes(buffer[6:8], "big")
                    if len(buffer) < 8 + size:
                        break
                    apdu, buffer = buffer[8 : 8 + size], buffer[8 + size :]
                    if lose_reply(apdu):
                        lost.append(len(apdu))
                        raise ConnectionResetError("reply lost")
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    connections: list[int] = []

    async def accept(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        meter_reader, meter_writer = await asyncio.open_connection(host, port)
        connections.append(1)
        await asyncio.gather(
            pipe(client_reader, meter_writer, True), pipe(meter_reader, client_writer, False)
        )

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], lost
    finally:
        server.close()


async def test_a_disconnect_whose_reply_is_lost_is_not_sent_twice(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(db, secret_box, tmp_path, per_concentrator=1, point_to_point=1) as fleet:
        serial = fleet.p2p_serials()[0]
        index = _index(fleet, serial)
        spec = fleet.plan.meter(index)
        assert spec.host is not None
        assert spec.port is not None
        breaker = fleet.runner.meters.pin(index).breaker
        commands: list[str] = []
        original = breaker.remote_disconnect

        def counted() -> Any:
            commands.append("disconnect")
            return original()

        breaker.remote_disconnect = counted  # type: ignore[method-assign]
        glo_actions = 0

        def second_glo_action(apdu: bytes) -> bool:
            # HLS pass 3 is the first ciphered ACTION of a session, the breaker command the
            # second one: lose the meter's answer to that.
            nonlocal glo_actions
            glo_actions += apdu[:1] == b"\xcb"
            return glo_actions == 2

        async with _lossy_proxy(spec.host, spec.port, second_glo_action) as (port, lost):
            with db.begin() as conn:
                conn.execute(
                    t.meters.update()
                    .where(t.meters.c.serial_number == serial)
                    .values(host="127.0.0.1", port=port)
                )
            run = FieldRun(fleet, _policies(tmp_path, ActivityType.DISCONNECT))
            order = run.submit(ActivityType.DISCONNECT, serial, reason="losses")
            row = await run.finish(order)
        assert lost, "the proxy never lost the reply"
        assert row["state"] == State.COMPLETED.value, row["error_text"]
        attempts = run.queue.attempts(order)
        assert len(attempts) == 2
        assert attempts[0]["outcome"] == State.RETRY.value
        assert commands == ["disconnect"]  # the retry read the breaker and did not resend
        assert '"commands_sent": 0' in row["result"]
        assert not fleet.runner.meters.model(index).breaker_closed(fleet.clock.now())


async def test_commissioning_through_the_concentrator(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(db, secret_box, tmp_path, point_to_point=0) as fleet:
        run = FieldRun(fleet)
        dc = fleet.dc()
        serial = fleet.gateway_serials(dc)[0]
        row = await run.finish(run.submit(ActivityType.DECOMMISSIONING, serial))
        assert row["state"] == State.COMPLETED.value, row["error_text"]
        node = dc.node_by_serial(serial)
        assert node is not None
        assert not node.commissioned
        row = await run.finish(run.submit(ActivityType.DECOMMISSIONING, serial))
        assert row["state"] == State.FAILED.value
        assert row["error_text"] == "CE not present in the table"
        row = await run.finish(run.submit(ActivityType.COMMISSIONING, serial))
        assert row["state"] == State.COMPLETED.value, row["error_text"]
        assert node.commissioned
