"""What every export states about itself: the period and tenants it covers, its TLP label, whether personal
data was pseudonymized, and when and by whom it was made."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from civicsoc.records import UtcDateTime
from civicsoc.store import TimeRange
from reports.tlp import Tlp

Interval = Literal["week", "month"]


class ExportInfo(BaseModel):
    """The self-description at the top of every JSON export."""

    tlp: str
    redacted: bool
    privacy: str
    period_from: UtcDateTime
    period_to: UtcDateTime
    time_field: str
    tenants: list[str]
    generated_at: UtcDateTime
    generated_by: str


@dataclass(frozen=True)
class ExportContext:
    period: TimeRange
    tenants: tuple[str, ...]
    tlp: Tlp
    redacted: bool
    generated_at: datetime
    generated_by: str
    time_field: str = "created_at"
    """The incident time that places an incident in the period (``created_at``: detection)."""
    interval: Interval = "week"
    tenant_names: Mapping[str, str] = field(default_factory=dict)

    @property
    def privacy(self) -> str:
        return ("personal data pseudonymized (keyed hash)" if self.redacted
                else "contains personal data: not for sharing outside the agency")

    @property
    def stamp(self) -> str:
        """The line every page, sheet and file carries."""
        return f"{self.tlp.label} - {self.privacy}"

    @property
    def period_text(self) -> str:
        return f"{self.period.start:%Y-%m-%d %H:%M} to {self.period.end:%Y-%m-%d %H:%M} UTC"

    @property
    def tenants_text(self) -> str:
        if not self.tenants:
            return "(no tenants)"
        return ", ".join(f"{self.tenant_names.get(t, t)} ({t})" if self.tenant_names.get(t, t) != t else t
                         for t in self.tenants)

    def file_name(self, report: str, suffix: str) -> str:
        """``civicsoc-register_20261101-20261201_tlp-amber_redacted.xlsx``: what, when, how shareable."""
        redacted = "_redacted" if self.redacted else ""
        return (f"civicsoc-{report}_{self.period.start:%Y%m%d}-{self.period.end:%Y%m%d}_{self.tlp.slug}{redacted}"
                f".{suffix}")

    def info(self) -> ExportInfo:
        return ExportInfo(tlp=self.tlp.label, redacted=self.redacted, privacy=self.privacy,
                          period_from=self.period.start, period_to=self.period.end, time_field=self.time_field,
                          tenants=list(self.tenants), generated_at=self.generated_at, generated_by=self.generated_by)

    def as_dict(self) -> dict[str, object]:
        return self.info().model_dump(mode="json")
