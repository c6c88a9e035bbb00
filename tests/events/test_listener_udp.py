"""The listener's UDP socket under bursts: it reads every datagram waiting at each wake-up,
asks the kernel for a large receive buffer, and counts what the kernel dropped."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys

import pytest
from sqlalchemy.engine import Engine

from smmc.domain.spontaneous import PowerEvent, PowerFrame, encode_power_frame
from smmc.events.listener import SpontaneousListener, udp_drops

from .sim_helpers import HOST, NOW

FRAME = encode_power_frame(
    PowerFrame(1, NOW.replace(tzinfo=None), "21LVM50AE000816", PowerEvent.OFF)
)


def burst(port: int, count: int) -> None:
    """``count`` datagrams sent while the event loop cannot run (a blocking socket, no
    await): they are all waiting in the listener's socket when it next wakes up."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(count):
            sock.sendto(FRAME, (HOST, port))


async def test_one_wake_up_reads_every_datagram_waiting(db: Engine) -> None:
    async with SpontaneousListener(db, host=HOST, port=0) as listener:
        # 200 frames fit the receive buffer even at Linux's default cap (208 KB asked, 416 KB)
        burst(listener.bound_port, 200)
        for _ in range(3):  # a few turns of the loop: reading one per turn would get 3
            await asyncio.sleep(0)
        assert listener.received == 200
        await listener.drain()
    assert listener.stored == 200
    assert listener.udp_dropped == 0


async def test_the_receive_buffer_asked_for_is_granted_within_the_kernel_cap(db: Engine) -> None:
    asked = 1 << 16  # below any Linux default cap (net.core.rmem_max: 212,992 or more)
    async with SpontaneousListener(db, host=HOST, port=0, udp_receive_buffer=asked) as listener:
        assert listener.udp_receive_buffer >= asked  # Linux grants twice what is asked


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/net/udp is Linux's")
async def test_datagrams_the_kernel_dropped_are_counted_and_logged(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="smmc.events.listener")
    async with SpontaneousListener(db, host=HOST, port=0, udp_receive_buffer=4096) as listener:
        burst(listener.bound_port, 1000)  # far more than a 4 KB buffer holds
        await asyncio.sleep(0.05)
        await listener.drain()
        received = listener.received
    assert 0 < received < 1000
    assert listener.stored == received
    assert listener.udp_dropped == 1000 - received
    assert any("the kernel dropped" in r.getMessage() for r in caplog.records)


def test_udp_drops_reads_the_kernels_counter_of_one_socket() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("/proc/net/udp is Linux's")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        receiver.bind((HOST, 0))
        assert udp_drops(receiver) == 0
        burst(receiver.getsockname()[1], 300)
        receiver.setblocking(False)
        kept = 0
        while True:
            try:
                receiver.recv(65535)
            except BlockingIOError:
                break
            kept += 1
        assert udp_drops(receiver) == 300 - kept > 0
