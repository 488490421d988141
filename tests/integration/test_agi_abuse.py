"""FastAGI abuse on the engine's real port while real calls go through: nobody is disturbed."""

from __future__ import annotations

import asyncio
import contextlib

from callcenter.engine import Engine
from callcenter.store.calls import get_call
from callcenter.telephony.simcall import SimCaller


async def _bare_connects(port: int, count: int) -> None:
    for _ in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        await writer.wait_closed()


async def _slow_client(port: int, stop: asyncio.Event) -> bool:
    """Send a header one byte at a time; return True if the server dropped us."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for byte in b"agi_network: yes\nagi_request: agi://x/hotline\n" * 100:
            if stop.is_set():
                return False
            writer.write(bytes([byte]))
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(1), 0.2) == b"":
                    return True  # EOF: the server hung up on us
        return False
    except (ConnectionError, OSError):
        return True
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _huge_header(port: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    chunk = b"agi_x: " + b"A" * 65536 + b"\n"
    try:
        for _ in range(160):  # 10 MB
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass  # the server cut us off early, as it should
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def test_abuse_does_not_disturb_real_calls_or_the_loop(engine: Engine,
                                                              caller: SimCaller) -> None:
    assert engine.agi is not None and engine.db is not None and engine.recorder is not None
    port = engine.agi.port
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    calls = [asyncio.create_task(caller.call("9502", d, hold_s=40, within_s=90))
             for d in ("4w5w6#", "8w9#")]
    slow = asyncio.create_task(_slow_client(port, stop))
    await asyncio.gather(_bare_connects(port, 50), _huge_header(port), _huge_header(port))
    results = await asyncio.gather(*calls)
    dropped = await slow
    stop.set()
    await tick_task

    assert dropped, "the slow client was never dropped (header timeout)"
    for result, expected in zip(results, ("456", "89"), strict=True):
        await engine.recorder.flush()
        record = await get_call(engine.db, result.call_id)
        assert record is not None
        digits = [e.detail["digits"] for e in record.events if e.kind == "ivr.digits"]
        assert digits == [expected]
    assert ticks > 50  # the loop kept running its timers throughout the calls
    assert engine.agi.active_sessions == 0
