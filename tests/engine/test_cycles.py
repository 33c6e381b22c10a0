"""The engine's pass counts: what a test waits on before asserting that nothing happened."""

from __future__ import annotations

import pytest

from core.engine.engine import Engine, EngineLoop

AS2_LOOPS = (EngineLoop.AS2_SEND, EngineLoop.AS2_MDN)


async def test_every_loop_counts_its_passes(engine: Engine) -> None:
    for loop in EngineLoop:
        if loop in AS2_LOOPS:
            continue  # the AS2 part's loops: the plain test engine leaves it off
        before = engine.cycles(loop)
        await engine.wait_for_cycles(loop, 2)
        assert engine.cycles(loop) >= before + 2


async def test_the_as2_loops_count_their_passes(as2_engine: Engine) -> None:
    for loop in AS2_LOOPS:
        before = as2_engine.cycles(loop)
        await as2_engine.wait_for_cycles(loop, 2)
        assert as2_engine.cycles(loop) >= before + 2


async def test_waiting_on_a_stopped_engine_fails_instead_of_passing(engine: Engine) -> None:
    """A dead engine finishes no pass, so "nothing happened" after a wait for passes is a
    finding: the wait fails where a sleep would have passed."""
    await engine.stop()
    with pytest.raises(TimeoutError):
        await engine.wait_for_cycles(EngineLoop.SCAN, 1, timeout_s=0.5)
