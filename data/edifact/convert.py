"""Rebuild the segment-group tables (D96A.json, D01B.json) from php-edifact/edifact-mapping.

Run from the project root with a checkout (or bare mirror) of the source repository::

    python data/edifact/convert.py /path/to/edifact-mapping [commit]

It reads ``src/Mapping/<release>/messages/*.xml`` at ``commit`` (default ``HEAD``) with
``git show`` and writes one compact JSON file per release beside this script. The product reads
only the JSON files; this script is kept so the tables can be checked and rebuilt.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

RELEASES = ("D96A", "D01B")
HERE = Path(__file__).resolve().parent


def git(repo: str, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", repo, *args], check=True, capture_output=True, text=True
    ).stdout


def entries(parent: ElementTree.Element) -> list[Any]:
    """``["TAG", maxrepeat]`` per segment, ``[group number, maxrepeat, [children]]`` per group."""
    result: list[Any] = []
    for child in parent:
        repeat = int(child.get("maxrepeat", "1"))
        if child.tag == "segment":
            result.append([child.get("id"), repeat])
        elif child.tag == "group":
            number = int(str(child.get("id")).removeprefix("SG"))
            result.append([number, repeat, entries(child)])
    return result


def convert(repo: str, commit: str, release: str) -> dict[str, Any]:
    folder = f"src/Mapping/{release}/messages/"
    names = git(repo, "ls-tree", "--name-only", f"{commit}:{folder}").split()
    messages: dict[str, Any] = {}
    for name in sorted(names):
        if not name.endswith(".xml"):
            continue
        root = ElementTree.fromstring(git(repo, "show", f"{commit}:{folder}{name}"))
        messages[name.removesuffix(".xml").upper()] = entries(root)
    return messages


def main() -> None:
    repo = sys.argv[1]
    commit = git(repo, "rev-parse", sys.argv[2] if len(sys.argv) > 2 else "HEAD").strip()
    for release in RELEASES:
        table = {
            "source": "https://github.com/php-edifact/edifact-mapping",
            "path": f"src/Mapping/{release}/messages/",
            "commit": commit,
            "release": release,
            "messages": convert(repo, commit, release),
        }
        text = json.dumps(table, separators=(",", ":"), sort_keys=False)
        (HERE / f"{release}.json").write_text(text + "\n", encoding="utf-8")
        print(release, len(table["messages"]), "messages", len(text), "bytes")


if __name__ == "__main__":
    main()
