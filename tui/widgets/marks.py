"""Radio buttons and checkboxes whose state shows as a mark, not only as a colour.

Textual draws the same inner character for on and off and tells them apart by colour, which a
256-colour SSH session or a colour-blind user may not see.
"""

from __future__ import annotations

import math

from textual.content import Content
from textual.geometry import Size
from textual.widgets import Checkbox, RadioButton


class MarkedRadioButton(RadioButton):
    MARK_ON = "●"
    MARK_OFF = " "

    @property
    def _button(self) -> Content:
        self.BUTTON_INNER = self.MARK_ON if self.value else self.MARK_OFF
        return super()._button

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        # Long labels wrap (with ``text-wrap: wrap``) instead of losing their end at 80 columns.
        if self.styles.text_wrap != "wrap" or width <= 0:
            return 1
        return max(1, math.ceil(self.get_content_width(container, viewport) / width))


class MarkedCheckbox(Checkbox):
    MARK_ON = "X"
    MARK_OFF = " "

    @property
    def _button(self) -> Content:
        self.BUTTON_INNER = self.MARK_ON if self.value else self.MARK_OFF
        return super()._button
