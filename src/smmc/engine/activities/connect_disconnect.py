"""Disconnect and connect: the breaker commands.

Not idempotent, so never sent blindly: in one association the executor reads the breaker
state first, sends the command only when the breaker is not already where the order wants
it, and reads the state again to prove the result. A retry after a lost reply therefore
finds the breaker already open and completes without a second command. The working-day
rule is applied by the queue when the order is scheduled (`earliest_start`).
"""

from __future__ import annotations

from smmc.domain.error_catalog import ErrorKey, FieldError
from smmc.domain.work_orders import ActivityType
from smmc.engine.activities.base import FieldExecutor, FieldResult
from smmc.field.drivers import MeterSession
from smmc.field.errors import FieldFailure
from smmc.store.work_orders import LeasedOrder

__all__ = ["ConnectExecutor", "DisconnectExecutor"]

DISCONNECTED = 0
CONNECTED = 1
READY_FOR_RECONNECTION = 2
_MAX_COMMANDS = 2  # disconnected → ready for reconnection → connected in some control modes


class _BreakerExecutor(FieldExecutor):
    wanted: int

    async def command(self, meter: MeterSession) -> None:
        raise NotImplementedError

    def reached(self, state: int) -> bool:
        return state == self.wanted

    async def run(self, order: LeasedOrder) -> FieldResult:
        async with self.drivers.meter(
            self.meter_id(order), order.concentrator_id, order.priority
        ) as meter:
            before = await meter.breaker_state()
            sent = 0
            state = before
            while not self.reached(state) and sent < _MAX_COMMANDS:
                await self.command(meter)
                sent += 1
                state = await meter.breaker_state()
        if not self.reached(state):
            raise FieldFailure(
                FieldError.of(
                    ErrorKey.UNKNOWN,
                    f"[{self.activity.value.upper()}] breaker state {state} after the command",
                )
            )
        return FieldResult(
            {
                "breaker_state_before": before,
                "breaker_state": state,
                "commands_sent": sent,
                "reason": order.reason,
            },
            breaker_state=state,
        )


class DisconnectExecutor(_BreakerExecutor):
    activity = ActivityType.DISCONNECT
    wanted = DISCONNECTED

    def reached(self, state: int) -> bool:
        # Ready for reconnection is open too: the supply is cut.
        return state in (DISCONNECTED, READY_FOR_RECONNECTION)

    async def command(self, meter: MeterSession) -> None:
        await meter.disconnect()


class ConnectExecutor(_BreakerExecutor):
    activity = ActivityType.CONNECT
    wanted = CONNECTED

    async def command(self, meter: MeterSession) -> None:
        await meter.reconnect()
