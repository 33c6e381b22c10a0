"""Run every benchmark, or those named: ``python -m bench [name ...]``."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = [
    "store",
    "engine",
    "intake",
    "backlog",
    "cluster",
    "tui_page",
    "sftp",
    "conversions",
    "as2",
    "memory",
    "cli_start",
]


def main(names: list[str]) -> None:
    for name in names or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}")
        module.main()


if __name__ == "__main__":
    main(sys.argv[1:])
