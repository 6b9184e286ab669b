"""Drafts of the regulatory notifications of an incident, pre-filled from what civicsoc knows, with the
fields only people can fill listed as ``missing``.

What each text must contain (checked against the published texts, Directive (EU) 2022/2555 and
Regulation (EU) 2016/679):

- **NIS2 early warning**, Art. 23(4)(a): within 24 h of becoming aware of the significant incident; where
  applicable it indicates whether the incident is suspected of being caused by unlawful or malicious acts
  and whether it could have a cross-border impact. → ``suspected_malicious_act``, ``cross_border_impact``.
- **NIS2 incident notification**, Art. 23(4)(b): within 72 h; updates the early warning and gives an initial
  assessment of the incident, including its severity and impact, and, where available, the indicators of
  compromise. → ``initial_assessment``, ``severity``, ``impact``, ``indicators_of_compromise`` (not
  required: "where available"), and the two early-warning answers again.
- **NIS2 final report**, Art. 23(4)(d): at the latest one month after the incident notification: (i) a
  detailed description of the incident, including its severity and impact; (ii) the type of threat or root
  cause that likely triggered it; (iii) applied and ongoing mitigation measures; (iv) where applicable, its
  cross-border impact. For an incident still ongoing then, Art. 23(4)(e) asks for a progress report instead
  (the draft warns).
- **GDPR personal data breach notification**, Art. 33(3): at least (a) the nature of the breach including,
  where possible, the categories and approximate number of data subjects and of personal data records
  concerned; (b) the name and contact details of the DPO or another contact point; (c) the likely
  consequences; (d) the measures taken or proposed, including mitigation of possible adverse effects.
  Art. 33(1): when notified after 72 h, the reasons for the delay (``delay_reasons``, required only then);
  Art. 33(4): what is not yet known may follow in phases.

- **CISA federal incident notification** (CISA Federal Incident Notification Guidelines, effective
  2017-04-01; for tenants whose ``notification_regime`` is ``us-federal``): within one hour of the incident
  being identified by the agency's CSIRT/SOC/IT department, with the current functional impact, the
  information impact (type of information lost, compromised or corrupted), recoverability (time and
  resources to recover), when the activity was first detected, the number of systems, records and users
  impacted, the network location of the observed activity and a point of contact; where known, the attack
  vector(s), indicators of compromise and the mitigation activities undertaken.

Every draft also carries a ``contact_point`` (GDPR Art. 33(3)(b); for NIS2 the CSIRT answers the entity under
Art. 23(5) and national forms ask for one) and ``aware_at``, the moment the clock started (the incident
confirmed significant, or for GDPR the moment the breach became known).

Pre-filling: the incident gives the entity, times, severity, ATT&CK techniques (a detection with
adversary techniques suggests a malicious act, for the analyst to confirm), hosts, users and indicators;
the playbook steps give the measures (containment, eradication and recovery steps done: applied; still to
do: ongoing or proposed); the deadlines come from ``playbooks.clocks``. Analysts fill the rest from the
incident's comments, one ``field: value`` per line (``cross-border impact: no``, ``contact point: CISO, +32
…``, ``data subjects approx: 1,200``); the latest comment wins. ``sources`` says where each value came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel

from civicsoc.records import Comment, IncidentStatus, UtcDateTime
from civicsoc.triage import CLOSED
from playbooks.clocks import Deadline, DeadlineStatus
from playbooks.model import Clock
from reports.context import ExportContext
from reports.facts import MITIGATION_PHASES, IncidentCase, StepRecord
from reports.indicators import Ioc, incident_iocs
from reports.redaction import Redactor


class NotificationKind(StrEnum):
    nis2_early_warning = "nis2-early-warning"
    nis2_notification = "nis2-notification"
    nis2_final_report = "nis2-final-report"
    gdpr_art33 = "gdpr-art33"
    cisa_federal = "cisa-federal"


CLOCK_OF = {NotificationKind.nis2_early_warning: Clock.nis2_early_warning,
            NotificationKind.nis2_notification: Clock.nis2_incident_notification,
            NotificationKind.nis2_final_report: Clock.nis2_final_report,
            NotificationKind.gdpr_art33: Clock.gdpr_breach_notification,
            NotificationKind.cisa_federal: Clock.cisa_incident_notification}
NIS2_KINDS = frozenset({NotificationKind.nis2_early_warning, NotificationKind.nis2_notification,
                        NotificationKind.nis2_final_report})
YES = frozenset({"yes", "y", "true", "suspected", "likely", "ja", "oui"})
NO = frozenset({"no", "n", "false", "none", "unlikely", "nee", "non", "nein"})
ALIASES = {"contact": "contact_point", "dpo": "contact_point", "root_cause": "threat_type_or_root_cause",
           "threat_type": "threat_type_or_root_cause", "malicious": "suspected_malicious_act",
           "cross_border": "cross_border_impact", "data_subjects": "data_subjects_approx",
           "records": "records_approx", "consequences": "likely_consequences", "nature": "nature_of_breach"}
INITIAL_ACCESS_TECHNIQUES = frozenset({"T1189", "T1190", "T1133", "T1200", "T1566", "T1091", "T1195", "T1199",
                                       "T1078", "T1659", "T1669"})
"""ATT&CK Enterprise initial-access techniques: the alerts' attack vector, where one was seen."""
_FIELD_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 _\-]{1,60}?)\s*:\s*(\S.*?)\s*$")


class NotificationDraft(BaseModel):
    """What every draft says about itself and the incident; subclasses add the fields of their text."""

    kind: NotificationKind
    title: str
    legal_basis: str
    incident_id: str
    tenant: str
    entity: str
    """The agency (tenant name)."""
    incident_title: str
    severity: str
    status: str
    first_event_at: UtcDateTime
    detected_at: UtcDateTime
    aware_at: UtcDateTime | None = None
    """When the clock started: confirmed significant (NIS2, GDPR) or the breach became known (GDPR)."""
    due_at: UtcDateTime | None = None
    deadline_status: str | None = None
    submitted_at: UtcDateTime | None = None
    contact_point: str | None = None
    tlp: str
    redacted: bool
    generated_at: UtcDateTime
    missing: list[str] = []
    """Required fields still empty: the analyst fills these (comments ``field: value``) before sending."""
    sources: dict[str, str] = {}
    warnings: list[str] = []

    REQUIRED: ClassVar[tuple[tuple[str, ...], ...]] = (("aware_at",), ("contact_point",))
    """Groups of fields of which at least one must be filled."""
    FILLABLE: ClassVar[tuple[str, ...]] = ("contact_point",)
    """Fields an analyst may fill from comments."""
    TEXT_FIELDS: ClassVar[tuple[str, ...]] = ("incident_title", "contact_point")
    """Free text that redaction rewrites (besides the subclass's own string and list fields)."""

    def body_fields(self) -> list[str]:
        return [name for name in type(self).model_fields if name not in NotificationDraft.model_fields]


class Nis2EarlyWarning(NotificationDraft):
    suspected_malicious_act: bool | None = None
    cross_border_impact: bool | None = None
    summary: str = ""

    REQUIRED = (*NotificationDraft.REQUIRED, ("suspected_malicious_act",), ("cross_border_impact",))
    FILLABLE = (*NotificationDraft.FILLABLE, "suspected_malicious_act", "cross_border_impact", "summary")


class Nis2IncidentNotification(NotificationDraft):
    suspected_malicious_act: bool | None = None
    cross_border_impact: bool | None = None
    initial_assessment: str | None = None
    impact: str | None = None
    indicators_of_compromise: list[Ioc] = []

    REQUIRED = (*NotificationDraft.REQUIRED, ("suspected_malicious_act",), ("cross_border_impact",),
                ("initial_assessment",), ("severity",), ("impact",))
    FILLABLE = (*NotificationDraft.FILLABLE, "suspected_malicious_act", "cross_border_impact",
                "initial_assessment", "impact")


class Nis2FinalReport(NotificationDraft):
    detailed_description: str | None = None
    impact: str | None = None
    threat_type_or_root_cause: str | None = None
    mitigation_applied: list[str] = []
    mitigation_ongoing: list[str] = []
    cross_border_impact: bool | None = None

    REQUIRED = (*NotificationDraft.REQUIRED, ("detailed_description",), ("severity",), ("impact",),
                ("threat_type_or_root_cause",), ("mitigation_applied",), ("cross_border_impact",))
    FILLABLE = (*NotificationDraft.FILLABLE, "detailed_description", "impact", "threat_type_or_root_cause",
                "mitigation_applied", "mitigation_ongoing", "cross_border_impact")


class GdprBreachNotification(NotificationDraft):
    nature_of_breach: str | None = None
    data_subject_categories: list[str] = []
    data_subjects_approx: str | None = None
    record_categories: list[str] = []
    records_approx: str | None = None
    likely_consequences: str | None = None
    measures_taken: list[str] = []
    measures_proposed: list[str] = []
    delay_reasons: str | None = None
    """Required only when the notification is (or will be) later than 72 h (Art. 33(1))."""

    REQUIRED = (*NotificationDraft.REQUIRED, ("nature_of_breach",), ("data_subject_categories",),
                ("data_subjects_approx",), ("record_categories",), ("records_approx",), ("likely_consequences",),
                ("measures_taken", "measures_proposed"))
    FILLABLE = (*NotificationDraft.FILLABLE, "nature_of_breach", "data_subject_categories", "data_subjects_approx",
                "record_categories", "records_approx", "likely_consequences", "measures_taken",
                "measures_proposed", "delay_reasons")


class CisaIncidentNotification(NotificationDraft):
    functional_impact: str | None = None
    information_impact: str | None = None
    recoverability: str | None = None
    systems_affected: int | None = None
    users_affected: int | None = None
    records_affected: str | None = None
    network_location: str | None = None
    attack_vectors: list[str] = []
    indicators_of_compromise: list[Ioc] = []
    mitigation_activities: list[str] = []

    REQUIRED = (*NotificationDraft.REQUIRED, ("functional_impact",), ("information_impact",), ("recoverability",),
                ("systems_affected",), ("users_affected",), ("records_affected",), ("network_location",))
    FILLABLE = (*NotificationDraft.FILLABLE, "functional_impact", "information_impact", "recoverability",
                "records_affected", "network_location", "attack_vectors", "mitigation_activities")


MODELS: dict[NotificationKind, type[NotificationDraft]] = {
    NotificationKind.nis2_early_warning: Nis2EarlyWarning,
    NotificationKind.nis2_notification: Nis2IncidentNotification,
    NotificationKind.nis2_final_report: Nis2FinalReport,
    NotificationKind.gdpr_art33: GdprBreachNotification,
    NotificationKind.cisa_federal: CisaIncidentNotification,
}
TITLES = {
    NotificationKind.nis2_early_warning: "NIS2 early warning",
    NotificationKind.nis2_notification: "NIS2 incident notification",
    NotificationKind.nis2_final_report: "NIS2 final report",
    NotificationKind.gdpr_art33: "GDPR personal data breach notification",
    NotificationKind.cisa_federal: "CISA federal incident notification",
}
LEGAL_BASIS = {
    NotificationKind.nis2_early_warning:
        "Directive (EU) 2022/2555 (NIS2) Art. 23(4)(a): to the CSIRT or competent authority within 24 hours of "
        "becoming aware of the significant incident; states whether unlawful or malicious acts are suspected "
        "and whether a cross-border impact is possible.",
    NotificationKind.nis2_notification:
        "Directive (EU) 2022/2555 (NIS2) Art. 23(4)(b): within 72 hours of becoming aware; updates the early "
        "warning with an initial assessment (severity and impact) and, where available, indicators of "
        "compromise.",
    NotificationKind.nis2_final_report:
        "Directive (EU) 2022/2555 (NIS2) Art. 23(4)(d): at the latest one month after the incident notification; "
        "detailed description with severity and impact, type of threat or root cause, applied and ongoing "
        "mitigation measures, cross-border impact where applicable.",
    NotificationKind.gdpr_art33:
        "Regulation (EU) 2016/679 (GDPR) Art. 33(1) and (3): to the supervisory authority within 72 hours of "
        "becoming aware of the breach; nature of the breach with categories and approximate numbers of data "
        "subjects and records, contact point (DPO), likely consequences, measures taken or proposed; reasons "
        "for any delay beyond 72 hours.",
    NotificationKind.cisa_federal:
        "CISA Federal Incident Notification Guidelines (FISMA 2014): to CISA within one hour of the incident being "
        "identified by the agency's CSIRT, SOC or IT department; functional and information impact, "
        "recoverability, time first detected, systems, records and users impacted, network location, point of "
        "contact; attack vectors, indicators of compromise and mitigation where known.",
}
LABELS = {
    "aware_at": "Aware since (UTC)", "contact_point": "Contact point",
    "suspected_malicious_act": "Suspected unlawful or malicious act", "cross_border_impact": "Cross-border impact",
    "summary": "Summary", "initial_assessment": "Initial assessment", "severity": "Severity", "impact": "Impact",
    "indicators_of_compromise": "Indicators of compromise", "detailed_description": "Detailed description",
    "threat_type_or_root_cause": "Type of threat or root cause", "mitigation_applied": "Mitigation applied",
    "mitigation_ongoing": "Mitigation ongoing", "nature_of_breach": "Nature of the breach",
    "data_subject_categories": "Categories of data subjects", "data_subjects_approx": "Approx. number of data subjects",
    "record_categories": "Categories of personal data records", "records_approx": "Approx. number of records",
    "likely_consequences": "Likely consequences", "measures_taken": "Measures taken",
    "measures_proposed": "Measures proposed", "delay_reasons": "Reasons for the delay",
    "functional_impact": "Functional impact", "information_impact": "Information impact",
    "recoverability": "Recoverability", "systems_affected": "Systems affected", "users_affected": "Users affected",
    "records_affected": "Records affected", "network_location": "Network location of the activity",
    "attack_vectors": "Attack vectors", "mitigation_activities": "Mitigation activities",
}


# pre-filling ---------------------------------------------------------------------------------------


def _key(text: str) -> str:
    key = re.sub(r"[\s\-]+", "_", text.strip().lower())
    return ALIASES.get(key, key)


def comment_values(comments: Iterable[Comment], fields: Iterable[str]) -> dict[str, tuple[str, Comment]]:
    """``field: value`` lines of the comments for the given fields; a later comment overrides an earlier one."""
    wanted = set(fields)
    found: dict[str, tuple[str, Comment]] = {}
    for comment in sorted(comments, key=lambda c: (c.created_at, c.id)):
        for line in comment.text.splitlines():
            match = _FIELD_LINE.match(line)
            if match is not None and (name := _key(match.group(1))) in wanted:
                found[name] = (match.group(2), comment)
    return found


def _coerce(model: type[NotificationDraft], name: str, text: str) -> Any:
    """A comment's text as the field's type; ``ValueError`` names what was expected."""
    annotation = model.model_fields[name].annotation
    if annotation in (bool, bool | None):
        answer = text.strip().lower().rstrip(".")
        if answer in YES or answer.startswith("yes"):
            return True
        if answer in NO or answer.startswith("no"):
            return False
        raise ValueError(f"{name}: expected yes or no, got {text!r}")
    if annotation == list[str]:
        return [part.strip() for part in re.split(r"\s*;\s*", text) if part.strip()]
    return text


def _measure(step: StepRecord) -> str:
    when = f" ({step.at:%Y-%m-%d %H:%M} UTC)" if step.at else ""
    return f"{step.title}{when}" + (f": {step.note}" if step.note else "")


def _join(values: Iterable[str], empty: str = "none") -> str:
    values = list(values)
    return ", ".join(values) if values else empty


def _assessment(case: IncidentCase) -> str:
    incident = case.incident
    rules = sorted({alert.rule_title for alert in case.alerts})
    return (f"{incident.severity.value.capitalize()} severity incident \"{incident.title}\", detected "
            f"{incident.created_at:%Y-%m-%d %H:%M} UTC; first related event {incident.first_seen:%Y-%m-%d %H:%M} "
            f"UTC, last {incident.last_seen:%Y-%m-%d %H:%M} UTC. {len(incident.alert_ids)} alerts from "
            f"{len(incident.rule_ids)} detection rules ({_join(rules[:8])}{', ...' if len(rules) > 8 else ''}). "
            f"Affected: {len(incident.hosts)} hosts ({_join(incident.hosts)}), {len(incident.users)} user "
            f"accounts ({_join(incident.users)}). ATT&CK tactics: {_join(incident.tactics)}; techniques: "
            f"{_join(incident.techniques)}. Current status: {incident.status.value}.")


def _description(case: IncidentCase) -> str:
    incident = case.incident
    milestones = [(label, moment) for label, moment in (
        ("acknowledged", incident.acknowledged_at), ("confirmed significant", incident.significant_at),
        ("contained", incident.contained_at), ("resolved", incident.resolved_at)) if moment is not None]
    timeline = "; ".join(f"{label} {moment:%Y-%m-%d %H:%M} UTC" for label, moment in milestones)
    return _assessment(case) + (f" Timeline: {timeline}." if timeline else "")


def _threat(case: IncidentCase) -> str | None:
    incident = case.incident
    if not incident.techniques and not incident.tactics:
        return None
    return (f"Adversary behaviour (MITRE ATT&CK): tactics {_join(incident.tactics)}; techniques "
            f"{_join(incident.techniques)}. Root cause to be confirmed by the analysis.")


def _prefill(kind: NotificationKind, case: IncidentCase) -> tuple[dict[str, Any], dict[str, str]]:
    incident, steps, fields = case.incident, case.facts.steps, MODELS[kind].model_fields
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def put(name: str, value: Any, source: str) -> None:
        if name in fields and not _empty(value):
            values[name] = value
            sources[name] = source

    techniques = ", ".join(incident.techniques)
    if incident.techniques:
        put("suspected_malicious_act", True, f"ATT&CK techniques of the alerts ({techniques}); analyst to confirm")
    applied = [_measure(s) for s in steps if s.phase in MITIGATION_PHASES and s.status.value == "done"]
    pending = [_measure(s) for s in steps if s.phase in MITIGATION_PHASES and s.status.value == "todo"]
    playbooks = ", ".join(case.facts.playbooks)
    if kind == NotificationKind.nis2_early_warning:
        put("summary", _assessment(case), "incident and alerts")
    elif kind == NotificationKind.nis2_notification:
        put("initial_assessment", _assessment(case), "incident and alerts")
        put("indicators_of_compromise", incident_iocs(incident, case.events), "incident IPs, domains, hashes")
    elif kind == NotificationKind.nis2_final_report:
        put("detailed_description", _description(case), "incident, alerts and workflow times")
        put("threat_type_or_root_cause", _threat(case), "ATT&CK tactics and techniques of the alerts")
        put("mitigation_applied", applied, f"playbook steps done ({playbooks})")
        put("mitigation_ongoing", pending, f"playbook steps to do ({playbooks})")
    elif kind == NotificationKind.gdpr_art33:
        put("measures_taken", applied, f"playbook steps done ({playbooks})")
        put("measures_proposed", pending, f"playbook steps to do ({playbooks})")
    elif kind == NotificationKind.cisa_federal:
        put("systems_affected", len(incident.hosts), "hosts of the incident's alerts")
        put("users_affected", len(incident.users), "user accounts of the incident's alerts")
        vectors = [t for t in incident.techniques if t.split(".")[0] in INITIAL_ACCESS_TECHNIQUES]
        put("attack_vectors", [f"ATT&CK {t}" for t in vectors], "initial-access techniques of the alerts")
        put("indicators_of_compromise", incident_iocs(incident, case.events), "incident IPs, domains, hashes")
        put("mitigation_activities", applied, f"playbook steps done ({playbooks})")
    return values, sources


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def missing_fields(draft: NotificationDraft, now: datetime) -> list[str]:
    missing = [" or ".join(group) for group in draft.REQUIRED
               if all(_empty(getattr(draft, name)) for name in group)]
    if isinstance(draft, GdprBreachNotification) and draft.due_at is not None and _empty(draft.delay_reasons):
        late = draft.submitted_at > draft.due_at if draft.submitted_at else now > draft.due_at
        if late:
            missing.append("delay_reasons")
    return missing


def _warnings(kind: NotificationKind, case: IncidentCase, draft_values: dict[str, Any],
              deadline: Deadline | None) -> list[str]:
    incident = case.incident
    warnings = []
    if deadline is not None and deadline.status == DeadlineStatus.missed and deadline.done_at is None:
        warnings.append(f"The deadline passed at {deadline.due_at:%Y-%m-%d %H:%M} UTC and nothing was submitted.")
    if kind == NotificationKind.gdpr_art33 and not incident.gdpr:
        warnings.append("The incident is not marked as a personal data breach (gdpr=false): confirm with the DPO "
                        "that Art. 33 applies before notifying.")
    if kind in NIS2_KINDS and not incident.nis2:
        warnings.append("NIS2 reporting is not marked as applying to this incident (nis2=false): confirm it is a "
                        "significant incident of an essential or important entity (Art. 23(3)).")
    if draft_values.get("aware_at") is None:
        warnings.append("The incident has not been confirmed significant: the reporting clock has not started "
                        "(mark it significant to record the moment of awareness).")
    if kind == NotificationKind.nis2_final_report and incident.status not in CLOSED:
        warnings.append("The incident is still ongoing: at the final report's deadline Art. 23(4)(e) asks for a "
                        "progress report, and the final report within one month of the incident being handled.")
    if incident.status == IncidentStatus.false_positive:
        warnings.append("The incident is marked as a false positive.")
    return warnings


def draft_notification(kind: NotificationKind, case: IncidentCase, context: ExportContext,
                       redactor: Redactor | None = None) -> NotificationDraft:
    """The draft of ``kind`` for the incident of ``case``, as of ``context.generated_at``."""
    model = MODELS[kind]
    incident = case.incident
    deadline = case.facts.deadline(CLOCK_OF[kind])
    aware = (incident.gdpr_aware_at or incident.significant_at) if kind == NotificationKind.gdpr_art33 \
        else incident.significant_at
    values, sources = _prefill(kind, case)
    for name, (text, comment) in comment_values(case.comments, model.FILLABLE).items():
        try:
            values[name] = _coerce(model, name, text)
        except ValueError as exc:
            sources[name] = f"comment by {comment.author} at {comment.created_at:%Y-%m-%d %H:%M} UTC not read: {exc}"
            continue
        sources[name] = f"comment by {comment.author} at {comment.created_at:%Y-%m-%d %H:%M} UTC"
    header: dict[str, Any] = {
        "kind": kind, "title": TITLES[kind], "legal_basis": LEGAL_BASIS[kind], "incident_id": incident.id,
        "tenant": incident.tenant, "entity": case.tenant_name, "incident_title": incident.title,
        "severity": incident.severity.value, "status": incident.status.value,
        "first_event_at": incident.first_seen, "detected_at": incident.created_at, "aware_at": aware,
        "due_at": deadline.due_at if deadline else None,
        "deadline_status": deadline.status.value if deadline else None,
        "submitted_at": deadline.done_at if deadline else None,
        "tlp": context.tlp.label, "redacted": redactor is not None, "generated_at": context.generated_at,
    }
    if aware is not None:
        sources["aware_at"] = ("gdpr_aware_at of the incident" if kind == NotificationKind.gdpr_art33
                               and incident.gdpr_aware_at else "significant_at of the incident")
    draft = model(**header, **values, sources=sources, warnings=_warnings(kind, case, header, deadline))
    draft = draft.model_copy(update={"missing": missing_fields(draft, context.generated_at)})
    return redact_draft(draft, redactor) if redactor is not None else draft


def redact_draft(draft: NotificationDraft, redactor: Redactor) -> NotificationDraft:
    """Every free-text value, list and source rewritten; IoCs keep public IPs, domains and hashes."""
    update: dict[str, Any] = {}
    text: Callable[[str], str] = redactor.text
    for name in (*NotificationDraft.TEXT_FIELDS, *draft.body_fields()):
        value = getattr(draft, name)
        if isinstance(value, str):
            update[name] = text(value)
        elif isinstance(value, list) and value and isinstance(value[0], Ioc):
            update[name] = [_redact_ioc(ioc, redactor) for ioc in value]
        elif isinstance(value, list):
            update[name] = [text(item) for item in value]
    update["sources"] = {name: text(source) for name, source in draft.sources.items()}
    update["warnings"] = [text(warning) for warning in draft.warnings]
    return draft.model_copy(update=update)


def _redact_ioc(ioc: Ioc, redactor: Redactor) -> Ioc:
    if ioc.kind in ("ipv4", "ipv6"):
        return ioc.model_copy(update={"value": redactor.ip(ioc.value)})
    if ioc.kind == "domain":
        return ioc.model_copy(update={"value": redactor.domain(ioc.value)})
    return ioc


# rendering -------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M} UTC"
    if isinstance(value, list):
        return "\n".join(f"{item.kind} {item.value}" if isinstance(item, Ioc) else str(item) for item in value)
    return str(value)


def pdf_rows(draft: NotificationDraft) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """(header rows, field rows with their source) for ``reports.pdf.notification``."""
    header = [("Entity", f"{draft.entity} ({draft.tenant})"),
              ("Incident", f"{draft.incident_id}: {draft.incident_title}"),
              ("Severity / status", f"{draft.severity} / {draft.status}"),
              ("First event", _show(draft.first_event_at)), ("Detected", _show(draft.detected_at)),
              ("Due", f"{_show(draft.due_at)} ({draft.deadline_status})" if draft.due_at else "clock not started"),
              ("Submitted", _show(draft.submitted_at) or "not yet"),
              ("Generated", f"{_show(draft.generated_at)}, {draft.tlp}"
                            + (", personal data pseudonymized" if draft.redacted else ""))]
    missing = {name for entry in draft.missing for name in entry.split(" or ")}
    fields = [(LABELS.get(name, name), _show(getattr(draft, name)) or ("(missing)" if name in missing else ""),
               draft.sources.get(name, "")) for name in ("aware_at", "contact_point", *draft.body_fields())]
    return header, fields
