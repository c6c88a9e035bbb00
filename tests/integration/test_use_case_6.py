"""Use case #6 end to end: the Legacy simulator asks over real SOAP (zeep, API token, uvicorn
with authentication), the head-end answers OK 0.3 and queues work orders carrying the
CorrelationID, a real worker executes them against the simulated fleet over TCP, the
simulated breaker opens (and closes again on connect), and the outcome — a ``created
EndDeviceEvents`` with the same CorrelationID — reaches Legacy through the outbox publisher:
on the real RabbitMQ broker's high-priority queue, or through the embedded backend (the
``legacy_inbox`` table and a SOAP callback to the ReplyAddress). A meter that stays
unreachable through its retries gives a FAILED outcome asking for field work, with its
``field_work_orders`` row."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "field"))  # the shared harness

from field_sim import SimFleet, sim_fleet

from smmc.config import OutboxSettings
from smmc.domain.access import Role
from smmc.domain.work_orders import ActivityType, PolicyBook, State, load_policies
from smmc.engine.activities import FieldContext, register_field_executors
from smmc.engine.executors import ExecutorRegistry
from smmc.engine.worker import Worker, WorkerConfig
from smmc.integration.outbox import OutboxPublisher, PublisherTiming
from smmc.integration.soap import CimService
from smmc.sim.legacy import (
    CallbackServer,
    LegacyClient,
    LegacyStore,
    QueueConsumer,
    ReceivedEvent,
    ThreadedServer,
    poll_inbox,
)
from smmc.store import tables as t
from smmc.store.secrets import SecretBox
from smmc.store.users import AccessStore
from smmc.store.work_orders import WorkOrderQueue
from smmc.web.app import create_app

DISCONNECTED, CONNECTED, DISCONNECT_FAILED = "3.31.17.68", "3.31.0.42", "3.31.0.84"
FINAL = frozenset({State.COMPLETED, State.FAILED, State.EXPIRED, State.CANCELLED})
UNREACHABLE = "[GATEWAY_ASSOCIATE] [TB_ACK_21] NODE NOT REACHABLE AGENT"
FAST = """
{activity}:
  backoff_base: 0.3
  backoff_cap: 0.3
  backoff_jitter: 0.0
  max_attempts: 3
"""


def fast_policies(directory: Path) -> PolicyBook:
    path = directory / "h8b-uc6-policies.yaml"
    path.write_text(
        "".join(
            FAST.format(activity=a.value) for a in (ActivityType.DISCONNECT, ActivityType.CONNECT)
        )
    )
    return load_policies(path)


@dataclass
class UseCase:
    fleet: SimFleet
    legacy: LegacyClient
    store: LegacyStore
    queue: WorkOrderQueue
    channel: str

    def breaker_closed(self, serial: str) -> bool:
        index = next(
            i for i in range(len(self.fleet.plan)) if self.fleet.plan.meter(i).serial == serial
        )
        return self.fleet.runner.meters.model(index).breaker_closed(self.fleet.clock.now())

    async def outcomes(
        self, correlation_id: str, count: int, timeout: float = 60.0
    ) -> list[ReceivedEvent]:
        """The EndDeviceEvents Legacy received for ``correlation_id``, once ``count`` came."""
        async with asyncio.timeout(timeout):
            while True:
                events = await asyncio.to_thread(self.store.events, correlation_id)
                if len(events) >= count:
                    return events
                await asyncio.sleep(0.1)

    async def settled(self, correlation_id: str, timeout: float = 30.0) -> list[sa.RowMapping]:
        """The orders of ``correlation_id`` once all are final (an outcome can reach Legacy
        a moment before the queue records the order's final state)."""
        async with asyncio.timeout(timeout):
            while True:
                orders = await asyncio.to_thread(self.orders, correlation_id)
                if all(State(o["state"]) in FINAL for o in orders):
                    return orders
                await asyncio.sleep(0.05)

    def orders(self, correlation_id: str) -> list[sa.RowMapping]:
        wo, m = t.work_orders.c, t.meters.c
        with self.fleet.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(wo.id, wo.activity, wo.state, wo.error_text, m.serial_number)
                    .join(t.meters, m.id == wo.meter_id)
                    .where(wo.external_id == correlation_id)
                    .order_by(wo.id)
                ).mappings()
            )


async def _broker(url: str, missing_service: Callable[[str], None]) -> None:
    import aio_pika

    try:
        connection = await aio_pika.connect(url, timeout=5)
    except (OSError, aio_pika.exceptions.AMQPError) as exc:
        missing_service(f"RabbitMQ not reachable at {url}: {exc}")
    await connection.close()


async def _delete_queues(url: str, names: list[str]) -> None:
    import aio_pika

    async with await aio_pika.connect(url, timeout=5) as connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)


async def _stop(stoppers: list[Callable[[], None]], tasks: list[asyncio.Task[None]]) -> None:
    for stop in stoppers:
        stop()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)


@asynccontextmanager
async def use_case(
    db: Engine,
    box: SecretBox,
    directory: Path,
    backend: str,
    missing_service: Callable[[str], None],
) -> AsyncIterator[UseCase]:
    async with sim_fleet(db, box, directory, per_concentrator=3, point_to_point=1) as fleet:
        policies = fast_policies(directory)
        queue = WorkOrderQueue(db, policies)
        app = create_app(db, auth_required=True)
        app.state.cim_service = CimService(db, WorkOrderQueue(db, policies))
        access = AccessStore(db)
        access.create_user("legacy-cis", Role.INTEGRATION)
        token = access.issue_token("legacy-cis", "use case 6")
        registry = ExecutorRegistry()
        drivers = fleet.drivers(gateway_timeout=5.0, timeout=2.0)
        register_field_executors(registry, FieldContext(drivers, now=fleet.clock.now))
        worker = Worker(queue, registry, WorkerConfig(name="uc6-worker", poll_interval=0.05))
        store = LegacyStore(directory / "h8b-uc6-legacy.db")
        timing = PublisherTiming(poll=0.05, reconnect=0.2, retry=timedelta(seconds=0.2))
        consumer: QueueConsumer | None = None
        callbacks: CallbackServer | None = None
        if backend == "rabbitmq":
            settings = OutboxSettings(
                backend="rabbitmq",
                queue_high=f"h8b-uc6-high-{uuid.uuid4().hex[:8]}",
                queue_normal=f"h8b-uc6-normal-{uuid.uuid4().hex[:8]}",
            )
            await _broker(settings.amqp_url, missing_service)
            queues = {"high": settings.queue_high, "normal": settings.queue_normal}
            consumer = QueueConsumer(store, settings.amqp_url, queues)
            await consumer.start()
            reply_address = f"queue://{settings.queue_high}"
        else:
            settings = OutboxSettings(backend="embedded", callback=True)
            callbacks = CallbackServer(store)
            callbacks.start()
            reply_address = callbacks.url
        publisher = OutboxPublisher(db, settings, timing=timing)
        tasks = [asyncio.create_task(worker.run()), asyncio.create_task(publisher.run())]
        try:
            with ThreadedServer(app).running() as server:
                legacy = LegacyClient(server.base_url, token, store, reply_address=reply_address)
                yield UseCase(fleet, legacy, store, queue, "high" if consumer else "callback")
        finally:
            await _stop([worker.stop, publisher.stop], tasks)
            if consumer is not None:
                await consumer.stop()
                await _delete_queues(settings.amqp_url, list(queues.values()))
            if callbacks is not None:
                callbacks.stop()
            store.close()


@pytest.mark.parametrize("backend", ["rabbitmq", "embedded"])
async def test_use_case_6_disconnect_connect_and_a_failure(
    db: Engine,
    secret_box: SecretBox,
    tmp_path: Path,
    backend: str,
    missing_service: Callable[[str], None],
) -> None:
    async with use_case(db, secret_box, tmp_path, backend, missing_service) as case:
        p2p = case.fleet.p2p_serials()[0]
        behind_dc, unreachable = case.fleet.gateway_serials(case.fleet.dc())[:2]
        served = [p2p, behind_dc]
        assert all(case.breaker_closed(serial) for serial in served)

        # Disconnect for non-payment: accepted at once, executed later.
        cut = await asyncio.to_thread(case.legacy.disconnect, served, "CORTE por deuda")
        assert (cut.result, cut.codes) == ("OK", ("0.3",))
        placed = case.orders(cut.correlation_id)
        assert [(o["activity"], o["serial_number"]) for o in placed] == [
            ("Disconnect", p2p),
            ("Disconnect", behind_dc),
        ]
        events = await case.outcomes(cut.correlation_id, 2)
        assert sorted((e.meter, e.event_type) for e in events) == sorted(
            (serial, DISCONNECTED) for serial in served
        )
        assert all(e.details["Outcome"] == "disconnected" for e in events)
        assert all(e.details["BreakerStatus"] == "Open" for e in events)
        assert not any(case.breaker_closed(serial) for serial in served)  # the simulator's state
        assert {o["state"] for o in await case.settled(cut.correlation_id)} == {"COMPLETED"}

        # Connect after payment restores the supply, with its own CorrelationID.
        back = await asyncio.to_thread(
            case.legacy.connect, served, "REPOSICION por pago", correlation_id=str(uuid.uuid4())
        )
        assert (back.result, back.codes) == ("OK", ("0.3",))
        events = await case.outcomes(back.correlation_id, 2)
        assert sorted((e.meter, e.event_type) for e in events) == sorted(
            (serial, CONNECTED) for serial in served
        )
        assert all(case.breaker_closed(serial) for serial in served)
        assert {o["state"] for o in await case.settled(back.correlation_id)} == {"COMPLETED"}

        # A meter the concentrator cannot reach: retried, then FAILED, asking for field work.
        node = case.fleet.dc().node_by_serial(unreachable)
        assert node is not None
        node.reachable = False
        lost = await asyncio.to_thread(case.legacy.disconnect, [unreachable], "hurto de energía")
        assert (lost.result, lost.codes) == ("OK", ("0.3",))
        (event,) = await case.outcomes(lost.correlation_id, 1)
        (order,) = await case.settled(lost.correlation_id)
        assert order["state"] == State.FAILED.value
        assert order["error_text"] == UNREACHABLE
        assert len(case.queue.attempts(order["id"])) == 3
        assert (event.meter, event.event_type) == (unreachable, DISCONNECT_FAILED)
        assert event.details["Outcome"] == "failed"
        assert event.details["FieldWorkRequired"] == "true"
        assert event.details["FieldWorkOrder"] == str(order["id"])
        assert event.reason == UNREACHABLE
        field = [f for f in case.queue.field_work_orders() if f["work_order_id"] == order["id"]]
        assert [f["reason"] for f in field] == [UNREACHABLE]
        assert case.breaker_closed(unreachable)

        # Each outcome arrived once, on the channel the backend uses.
        correlations = {cut.correlation_id, back.correlation_id, lost.correlation_id}
        outcomes = [m for m in case.store.messages() if m["correlation_id"] in correlations]
        assert len(outcomes) == 5
        assert {m["channel"] for m in outcomes} == {case.channel}
        assert {(m["verb"], m["noun"]) for m in outcomes} == {("created", "EndDeviceEvents")}

        if backend == "embedded":
            # The Legacy integration database holds the same messages, read once.
            with db.connect() as conn:
                inbox = conn.execute(
                    sa.select(t.legacy_inbox.c.message_id, t.legacy_inbox.c.priority).where(
                        t.legacy_inbox.c.correlation_id.in_(correlations)
                    )
                ).all()
            assert {row[0] for row in inbox} == {m["message_id"] for m in outcomes}
            assert {row[1] for row in inbox} == {"high"}
            assert await asyncio.to_thread(poll_inbox, db, case.store) >= 5
            inbox_deliveries = [
                d
                for d in case.store.deliveries()
                if d["channel"] == "inbox" and d["message_id"] in {row[0] for row in inbox}
            ]
            assert len(inbox_deliveries) == 5
            assert all(d["duplicate"] for d in inbox_deliveries)
