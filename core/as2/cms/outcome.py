"""What processing one inbound message yields, shared by its stages and its MDN.

:class:`State` records the layers found and the MIC of the signed content; :class:`Failure`
is how any stage stops processing with an RFC 4130 §7.5.3 disposition modifier and the
reason pyas2lib would give, which :func:`core.as2.cms.parse.parse_message` turns into the
disposition and the MDN.
"""

from __future__ import annotations

from dataclasses import dataclass


class Failure(Exception):
    def __init__(self, modifier: str, reason: str) -> None:
        super().__init__(reason)
        self.modifier = modifier
        self.reason = reason


@dataclass(slots=True)
class State:
    signed: bool = False
    encrypted: bool = False
    compressed: bool = False
    mic: str | None = None
    mic_algorithm: str | None = None
