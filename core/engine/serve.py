"""``docbridge serve``: the engine without a screen, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import replace
from pathlib import Path

from core.config import Config, load_config
from core.engine.engine import Engine, EngineSettings
from core.errors import DocbridgeError


async def serve(
    data_dir: Path,
    run_sftp: bool = True,
    run_as2: bool = True,
    *,
    node_name: str = "",
    sftp_port: int | None = None,
    as2_port: int | None = None,
) -> int:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    config = with_ports(load_config(data_dir), sftp_port, as2_port)
    if not config.store_url and not config.database_path.exists():
        raise DocbridgeError(
            f"No docbridge data directory at {data_dir}.", "Run 'docbridge init --demo' first."
        )
    # The engine's threads (database, file writes) hold the GIL for up to 5 ms at a time by
    # default, while an SFTP session waits to answer its next request: switch sooner.
    sys.setswitchinterval(0.0005)
    engine = Engine(config, EngineSettings(run_sftp=run_sftp, run_as2=run_as2, node_name=node_name))
    await engine.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    listeners = ", ".join(f"{k} {v}" for k, v in engine.listeners.items()) or "no listeners"
    pid = engine.owner.split(":")[1]
    print(
        f"docbridge engine running as node {engine.node_name} (pid {pid}): {listeners}",
        flush=True,
    )
    lost = asyncio.create_task(engine.lost_lease.wait())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({lost, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for task in (lost, stopped):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await engine.stop()
    return 1 if engine.lost_lease.is_set() else 0


def with_ports(config: Config, sftp_port: int | None, as2_port: int | None) -> Config:
    """The config with the listening ports the command line gives (several nodes on one host
    need their own); 0 lets the system choose a free port."""
    if sftp_port is not None:
        config = replace(config, sftp=replace(config.sftp, port=sftp_port))
    if as2_port is not None:
        config = replace(config, as2=replace(config.as2, port=as2_port))
    return config
