"""``callcenter/periodic.py``: rounds go on after a failed one (logged with its traceback), the
interval is read after each round, close stops a round under way; a BaseException (an exit)
ends the rounds and is not swallowed."""

from __future__ import annotations

import asyncio
import logging

import pytest

from callcenter.periodic import Periodic

log = logging.getLogger("callcenter.test_periodic")


async def test_rounds_go_on_after_a_failure_and_close_stops_them(
        caplog: pytest.LogCaptureFixture) -> None:
    rounds: list[int] = []
    every = [0.001]
    blocked = asyncio.Event()

    async def round_() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 2:
            raise RuntimeError("the back office fell over")
        if len(rounds) == 4:
            every[0] = 3600.0           # read after this round: the next is an hour away
            blocked.set()

    periodic = Periodic("test-rounds", round_, lambda: every[0], log,
                        "test: a round failed (next in %.0f s)")
    with caplog.at_level(logging.ERROR, logger=log.name):
        periodic.start()
        async with asyncio.timeout(10):
            await blocked.wait()
        await asyncio.sleep(0.05)
        assert rounds == [0, 1, 2, 3] and periodic.running
        await periodic.close()
        assert not periodic.running
    assert "test: a round failed (next in 0 s)" in caplog.text and "Traceback" in caplog.text


async def test_close_cancels_a_round_under_way_and_raises_nothing() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    periodic = Periodic("test-slow", slow, lambda: 1.0, log, "failed %.0f")
    periodic.start()
    async with asyncio.timeout(10):
        await started.wait()
    await periodic.close()
    assert cancelled.is_set()
    await periodic.close()              # twice: nothing to do


async def test_what_is_not_an_error_of_a_round_is_not_swallowed() -> None:
    class Exit(BaseException):
        pass

    async def dies() -> None:
        raise Exit

    periodic = Periodic("test-dies", dies, lambda: 1.0, log, "failed %.0f")
    periodic.start()
    await asyncio.sleep(0.01)
    assert not periodic.running
    with pytest.raises(Exit):
        await periodic.close()          # a BaseException is not swallowed
