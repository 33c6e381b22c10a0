"""The guard of tests/blocking.py really fails a test that blocks the event loop (a guard that
cannot fail proves nothing). This module is scanned like the product."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from blockbuster import BlockingError

from core.config import load_config


async def test_sleeping_on_the_loop_is_refused() -> None:
    async def dozes() -> None:
        time.sleep(0.1)  # noqa: ASYNC251 - the blocking call under test

    with pytest.raises(BlockingError, match="time.sleep"):
        await dozes()


async def test_reading_a_file_on_the_loop_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    await asyncio.to_thread(path.write_text, "hello")

    async def reads() -> str:
        with open(path) as file:  # noqa: ASYNC230 - the blocking call under test
            return file.read()

    with pytest.raises(BlockingError, match="read"):
        await reads()


async def test_a_product_function_that_touches_the_disk_is_refused_on_the_loop(
    tmp_path: Path,
) -> None:
    with pytest.raises(BlockingError, match="os.stat"):
        load_config(tmp_path)  # reads docbridge.toml: meant for a thread or before the loop
    assert (await asyncio.to_thread(load_config, tmp_path)).data_dir == tmp_path


async def test_the_same_work_in_a_thread_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    await asyncio.to_thread(path.write_text, "hello")
    assert await asyncio.to_thread(path.read_text) == "hello"
    await asyncio.to_thread(time.sleep, 0.01)
    await asyncio.sleep(0.01)  # yields to the loop, blocks nothing


def test_a_plain_test_without_a_running_loop_may_block(tmp_path: Path) -> None:
    time.sleep(0.01)
    assert load_config(tmp_path).data_dir == tmp_path
