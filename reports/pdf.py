"""PDF documents (fpdf2): the period report and a notification draft.

Every page but the cover carries the TLP label (TLP 2.0 colours on black, as the standard prescribes for
documents) in its header and the privacy statement in its footer. Text is set in DejaVu Sans, taken from
matplotlib's own data folder (matplotlib is a dependency anyway), so names in any European script print
and pdftotext gets the text back.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import matplotlib
import pandas as pd
from fpdf import FPDF
from fpdf.fonts import FontFace

from civicsoc.event import format_timestamp
from reports.context import ExportContext
from reports.statistics import Statistics, format_hours

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT = "DejaVu"
GREY = (107, 114, 128)
MAX_TABLE_ROWS = 300
"""The PDF is a summary for people: beyond this many incidents it shows the most severe and recent ones and
refers to the register export for the rest (a 10,000-row table would take minutes and help nobody)."""
HEADING = (31, 41, 55)


def _when(moment: object) -> str:
    if moment is None or moment is pd.NaT or (isinstance(moment, float) and moment != moment):
        return ""
    if isinstance(moment, pd.Timestamp):
        moment = moment.to_pydatetime()
    if isinstance(moment, datetime):
        return f"{moment:%Y-%m-%d %H:%M}"
    return str(moment)


class ReportDocument(FPDF):
    """A4 portrait, DejaVu Sans, TLP header and privacy footer on every page after the cover."""

    def __init__(self, title: str, context: ExportContext) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.report_title = title
        self.context = context
        self.add_font(FONT, "", str(FONT_DIR / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
        self.set_font(FONT, size=10)
        self.set_auto_page_break(auto=True, margin=18)
        self.set_title(title)
        self.set_creator("civicsoc")
        self.set_subject(context.period_text)
        self.set_keywords(context.tlp.label)
        self.cover_pages = 0

    def tlp_label(self, x: float, y: float, size: float = 9) -> None:
        label = self.context.tlp.label
        self.set_font(FONT, "B", size)
        width = self.get_string_width(label) + 4
        self.set_xy(x - width, y)
        self.set_fill_color(0, 0, 0)
        self.set_text_color(*self.context.tlp.rgb)
        self.cell(width, size * 0.55, label, fill=True, align="C")
        self.set_text_color(0, 0, 0)

    def header(self) -> None:
        if self.page_no() <= self.cover_pages:
            return
        self.set_font(FONT, "", 8)
        self.set_text_color(*GREY)
        self.set_xy(self.l_margin, 8)
        self.cell(0, 5, f"civicsoc - {self.report_title}")
        self.tlp_label(self.w - self.r_margin, 8)
        self.set_xy(self.l_margin, 18)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font(FONT, "", 7)
        self.set_text_color(*GREY)
        self.cell(0, 4, f"{self.context.tlp.label} - {self.context.privacy}", align="L")
        self.set_x(self.l_margin)
        self.cell(0, 4, f"page {self.page_no()}/{{nb}}", align="R")
        self.set_text_color(0, 0, 0)

    def heading(self, text: str, size: float = 14) -> None:
        self.set_font(FONT, "B", size)
        self.set_text_color(*HEADING)
        self.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(2)
        self.set_text_color(0, 0, 0)
        self.set_font(FONT, "", 10)

    def paragraph(self, text: str, size: float = 10, *, style: str = "") -> None:
        self.set_font(FONT, style, size)
        self.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(1)
        self.set_font(FONT, "", 10)

    def grid(self, headings: Sequence[str] | None, rows: Sequence[Sequence[str]], widths: Sequence[float],
             size: float = 8) -> None:
        """A table; its heading row (if any) repeats on every page it spans."""
        self.set_font(FONT, "", size)
        heading_style = FontFace(family=FONT, emphasis="BOLD", color=(255, 255, 255), fill_color=HEADING)
        with self.table(col_widths=tuple(widths), text_align="LEFT", line_height=size * 0.5,
                        headings_style=heading_style, first_row_as_headings=headings is not None,
                        width=sum(widths)) as table:
            if headings is not None:
                table.row(list(headings))
            for values in rows:
                table.row([str(value) for value in values])
        self.ln(3)
        self.set_font(FONT, "", 10)

    def cover(self, subtitle_lines: Sequence[str]) -> None:
        self.cover_pages = 1
        self.add_page()
        self.tlp_label(self.w - self.r_margin, 14, size=14)
        self.set_xy(self.l_margin, 70)
        self.set_font(FONT, "B", 26)
        self.set_text_color(*HEADING)
        self.multi_cell(0, 12, self.report_title, new_x="LMARGIN", new_y="NEXT")
        self.ln(6)
        self.set_text_color(0, 0, 0)
        for line in subtitle_lines:
            self.paragraph(line, 12)
        self.ln(10)
        self.paragraph(self.context.privacy, 10, style="B")


def _figures(stats: Statistics) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [("Incidents", str(stats.incidents))]
    rows += [(f"  {tenant}", str(count)) for tenant, count in stats.by_tenant.items()]
    rows += [(f"  severity {severity}", str(count)) for severity, count in stats.by_severity.items() if count]
    rows += [(f"  status {status}", str(count)) for status, count in stats.by_status.items() if count]
    for result in stats.response_times:
        if result.mean_hours is None:
            rows.append((f"{result.measure} ({result.definition})", "no incident has these times yet"))
        else:
            rows.append((f"{result.measure} ({result.definition})",
                         f"{format_hours(result.mean_hours)} mean, {format_hours(result.median_hours)} median, "
                         f"{result.incidents} incidents"))
    totals = stats.deadline_totals
    rows.append(("Regulatory deadlines", f"{totals['met']} met, {totals['missed']} missed, {totals['open']} open"))
    return rows


def period_report(stats: Statistics, frame: pd.DataFrame, open_deadlines: pd.DataFrame, charts: dict[str, bytes],
                  context: ExportContext) -> bytes:
    """Cover, summary figures, charts, the incident table and the regulatory reports not yet submitted."""
    document = ReportDocument("Incident report", context)
    closed = sum(stats.by_status.get(status, 0) for status in ("resolved", "false_positive", "duplicate"))
    mtta = stats.response_time("MTTA")
    document.cover([f"Period: {context.period_text}", f"Tenants: {context.tenants_text}",
                    f"Incidents: {stats.incidents} ({stats.incidents - closed} open)",
                    f"Mean time to acknowledge: {format_hours(mtta.mean_hours)}",
                    f"Regulatory reports not yet submitted: {len(open_deadlines)}",
                    f"Generated {format_timestamp(context.generated_at)} by {context.generated_by}"])
    document.add_page()
    document.heading("Summary")
    document.grid(["Figure", "Value"], _figures(stats), widths=(80, 100), size=9)
    document.paragraph("Times are in UTC. MTTD counts from the first event of an incident to its detection, MTTA "
                       "from detection to acknowledgement, MTTR from detection to resolution; duplicates are "
                       "not counted.", 8)
    for index, (name, png) in enumerate(charts.items()):
        if index % 2 == 0:
            document.add_page()
            if index == 0:
                document.heading("Charts")
        document.image(io.BytesIO(png), w=175, title=name, alt_text=name)
        document.ln(4)
    document.add_page()
    shown = frame
    if len(frame) > MAX_TABLE_ROWS:
        shown = frame.sort_values(["severity", "detected"], ascending=False).head(MAX_TABLE_ROWS)
        document.heading(f"Incidents ({len(frame)}; the {MAX_TABLE_ROWS} most severe and recent shown, the "
                         "register export lists all)")
    else:
        document.heading(f"Incidents ({len(frame)})")
    rows = [(row.incident_id, row.tenant, row.title, str(row.severity), row.status, _when(row.detected),
             format_hours(row.time_to_acknowledge_h, short=True), format_hours(row.time_to_resolve_h, short=True),
             "" if row.playbook_completion != row.playbook_completion else f"{row.playbook_completion:.0%}",
             " ".join(name for name, flag in (("NIS2", row.nis2), ("GDPR", row.gdpr)) if flag))
            for row in shown.itertuples(index=False)]
    if rows:
        document.grid(["Incident", "Tenant", "Title", "Severity", "Status", "Detected", "Ack", "Res.",
                       "PB", "Reg."], rows, widths=(37, 13, 44, 13, 15, 19, 11, 11, 9, 10), size=6.5)
    else:
        document.paragraph("No incidents in this period.")
    document.heading("Open regulatory deadlines", 12)
    if open_deadlines.empty:
        document.paragraph("None: every report that is due has been submitted.")
    else:
        document.grid(["Incident", "Tenant", "Report", "Regulation", "Due (UTC)", "Status"],
                      [(row.incident_id, row.tenant, row.report, row.regulation, _when(row.due), row.status)
                       for row in open_deadlines.itertuples(index=False)],
                      widths=(36, 16, 45, 31, 28, 16), size=7)
    return bytes(document.output())


def notification(title: str, legal_basis: str, header: Sequence[tuple[str, str]],
                 fields: Sequence[tuple[str, str, str]], missing: Sequence[str], warnings: Sequence[str],
                 context: ExportContext) -> bytes:
    """A notification draft: what it is for, the pre-filled fields with their source, and what is missing.
    ``fields``: (label, value as text, where the value came from)."""
    document = ReportDocument(title, context)
    document.add_page()
    document.heading(f"DRAFT - {title}", 16)
    document.paragraph(legal_basis, 8)
    document.grid(None, header, widths=(50, 130), size=8)
    if warnings:
        document.heading("Attention", 11)
        for warning in warnings:
            document.paragraph(f"- {warning}", 9)
    if missing:
        document.heading("To fill in before sending", 11)
        document.paragraph(", ".join(missing), 9, style="B")
    document.heading("Fields", 11)
    document.grid(["Field", "Value", "Source"], fields, widths=(45, 95, 40), size=8)
    return bytes(document.output())
