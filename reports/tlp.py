"""The Traffic Light Protocol label every export carries (FIRST TLP 2.0, https://www.first.org/tlp/).

TLP 2.0 has five labels. ``CLEAR`` and ``GREEN`` allow sharing beyond the agency and its partners, so
``allows_wide_sharing`` tells the export layer to insist on redaction for them: personal data of
citizens never leaves at those levels.
"""

from __future__ import annotations

from enum import StrEnum

from civicsoc.errors import InvalidQuery


class Tlp(StrEnum):
    clear = "clear"
    green = "green"
    amber = "amber"
    amber_strict = "amber+strict"
    red = "red"

    @property
    def label(self) -> str:
        """``TLP:AMBER+STRICT``: the form TLP 2.0 prescribes for documents."""
        return f"TLP:{self.value.upper()}"

    @property
    def slug(self) -> str:
        """For file names: ``tlp-amber-strict``."""
        return "tlp-" + self.value.replace("+", "-")

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The label colour of the TLP 2.0 standard (printed on black)."""
        return {Tlp.clear: (255, 255, 255), Tlp.green: (51, 255, 0), Tlp.amber: (255, 192, 0),
                Tlp.amber_strict: (255, 192, 0), Tlp.red: (255, 43, 43)}[self]

    @property
    def allows_wide_sharing(self) -> bool:
        return self in (Tlp.clear, Tlp.green)

    @classmethod
    def parse(cls, text: str | Tlp) -> Tlp:
        """``amber+strict``, ``TLP:AMBER+STRICT``, ``amber-strict``, ``amber strict`` (a ``+`` that a query
        string decoded to a space) → ``Tlp.amber_strict``; anything else is an ``InvalidQuery`` naming the labels."""
        if isinstance(text, Tlp):
            return text
        key = text.strip().lower().removeprefix("tlp:").replace(" ", "+").replace("-", "+").replace("_", "+")
        for label in cls:
            if label.value == key:
                return label
        raise InvalidQuery(f"tlp: expected one of {', '.join(t.value for t in cls)}; got {text!r}")
