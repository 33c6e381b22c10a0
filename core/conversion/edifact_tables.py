"""Segment groups of UN/EDIFACT messages, and the walk that puts a message's segments in them.

The EDIFACT view names segment groups ``GROUP_n`` as the UN/EDIFACT directory of the message's
release numbers them (SG2 of ORDERS D96A is NAD-LOC-FII-SG3-SG4-SG5). The directory's message
structures ship as data, one JSON file per release in ``data/edifact/`` (see its README for the
source and how they were made).

A segment opens a group only when it is that group's first (trigger) segment and the group can
follow where the message stands; otherwise the walk climbs out of the open groups until a level
accepts the segment, as EDIFACT parsers (bots, the platform) do. Mandatory segments and the
repeat limits of groups are not enforced: a message that breaks them still reads, in the groups
its segments imply. Only a segment's own repeat limit counts, so that a second ``LIN`` starts a
new ``LIN`` group instead of joining the first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from core.demo import SHIPPED_DATA_DIR

__all__ = ["GroupWalker", "SegmentSpec", "GroupSpec", "message_structure", "TABLES_DIR"]

TABLES_DIR = SHIPPED_DATA_DIR / "edifact"


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    tag: str
    max_repeat: int


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """A segment group (``number`` 0 is the message itself); its first child is its trigger."""

    number: int
    max_repeat: int
    children: tuple[SegmentSpec | GroupSpec, ...]
    trigger: str = field(init=False)
    # Tag -> indexes of the children it can be (a segment) or start (a group), for the walk.
    slots_of: dict[str, tuple[int, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        first = self.children[0]
        object.__setattr__(
            self, "trigger", first.tag if isinstance(first, SegmentSpec) else first.trigger
        )
        slots: dict[str, list[int]] = {}
        for index, child in enumerate(self.children):
            tag = child.tag if isinstance(child, SegmentSpec) else child.trigger
            slots.setdefault(tag, []).append(index)
        object.__setattr__(
            self, "slots_of", {tag: tuple(indexes) for tag, indexes in slots.items()}
        )


@lru_cache(maxsize=64)
def message_structure(release: str, message_type: str) -> GroupSpec | None:
    """The structure of ``message_type`` in ``release`` (``"D96A"``), or None when not shipped."""
    messages = _release_table(release)
    entries = messages.get(message_type) if messages else None
    if not entries:
        return None
    return GroupSpec(0, 1, _children(entries))


@lru_cache(maxsize=8)
def _release_table(release: str) -> dict[str, Any] | None:
    if not release.isalnum():
        return None
    path = TABLES_DIR / f"{release.upper()}.json"
    if not path.is_file():
        return None
    table: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["messages"]
    return table


def _children(entries: list[Any]) -> tuple[SegmentSpec | GroupSpec, ...]:
    children: list[SegmentSpec | GroupSpec] = []
    for entry in entries:
        if isinstance(entry[0], str):
            children.append(SegmentSpec(entry[0], int(entry[1])))
        else:
            children.append(GroupSpec(int(entry[0]), int(entry[1]), _children(entry[2])))
    return tuple(children)


@dataclass(slots=True)
class _Frame:
    group: GroupSpec
    index: int = 0
    repeats: int = 1


@dataclass(slots=True)
class GroupWalker:
    """Where a message stands in its structure, fed one segment tag at a time.

    It starts just after ``UNH`` (the first child of the message).
    """

    structure: GroupSpec
    _stack: list[_Frame] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stack.append(_Frame(self.structure))

    @property
    def depth(self) -> int:
        """How many groups are open."""
        return len(self._stack) - 1

    def place(self, tag: str) -> tuple[int, int | None] | None:
        """Move to ``tag``: ``(groups to close, number of the group to open or None)``.

        None when no open level accepts the segment; the position is then unchanged.
        """
        for level in range(len(self._stack) - 1, -1, -1):
            frame = self._stack[level]
            found = _find(frame, tag)
            if found is None:
                continue
            closed = len(self._stack) - 1 - level
            del self._stack[level + 1 :]
            index, child = found
            if isinstance(child, SegmentSpec):
                frame.repeats = frame.repeats + 1 if index == frame.index else 1
                frame.index = index
                return closed, None
            frame.index, frame.repeats = index, 1
            self._stack.append(_Frame(child))
            return closed, child.number
        return None


def _find(frame: _Frame, tag: str) -> tuple[int, SegmentSpec | GroupSpec] | None:
    """The first child at or after the frame's position that ``tag`` may be (or start)."""
    group = frame.group
    for index in group.slots_of.get(tag, ()):
        if index < frame.index:
            continue
        child = group.children[index]
        if (
            isinstance(child, SegmentSpec)
            and index == frame.index
            and frame.repeats >= child.max_repeat
        ):
            continue
        return index, child
    return None
