"""Notification drafts and STIX bundles from a hand-built incident case.

The expected ``missing`` lists follow the texts, not the code: NIS2 Art. 23(4)(a) needs the suspected
malicious act and the cross-border impact; (b) adds the initial assessment, severity and impact (indicators
only "where available"); (d) a detailed description, severity and impact, type of threat or root cause,
applied mitigation and cross-border impact; GDPR Art. 33(3) the nature of the breach with categories and
approximate numbers of data subjects and records, a contact point, likely consequences and measures taken or
proposed, plus reasons for a delay beyond 72 hours (Art. 33(1)). Every draft needs a contact point and the
moment of awareness. Of those, the fixture's incident supplies: awareness (confirmed significant), a
suspected malicious act (an ATT&CK technique), the assessment and description (from the incident), the
threat type (ATT&CK), applied and proposed measures (a containment step done, one to do); a comment supplies
the cross-border impact.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import stix2

from civicsoc.event import Event
from civicsoc.records import Comment, Incident, IncidentStatus, NotificationRegime, Severity, StepStatus
from civicsoc.store import TimeRange
from playbooks.clocks import RegulatoryFlags, regulatory_deadlines
from playbooks.model import Phase
from reports.context import ExportContext
from reports.facts import IncidentCase, IncidentFacts, StepRecord
from reports.notifications import NotificationKind, draft_notification
from reports.redaction import Redactor
from reports.stix import TLP2_IDS, incident_bundle
from reports.tlp import Tlp

SIGNIFICANT = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)
MD5, IMPHASH = "53748b0cd4c78af5ef1d4e77f3c873af", "34bc1195516e78393351b444df843666"
SHA256 = "e16b9d201ec1d7e29b3ad532a9ad8f1ae0cb5821bb916a79f6dbeb1c6e6b85fa"
KEY = b"n" * 32


def make_case(*, comments: tuple[str, ...] = ("Looked at the host.\ncross-border impact: no",),
              techniques: tuple[str, ...] = ("T1003.001",), significant: datetime | None = SIGNIFICANT,
              now: datetime = SIGNIFICANT + timedelta(hours=30)) -> IncidentCase:
    incident = Incident(
        id="inc-1", tenant="town-a", title="LSASS dump on ws-0042 by CORP\\jdoe", severity=Severity.high,
        status=IncidentStatus.contained, techniques=list(techniques), tactics=["credential-access"],
        hosts=["ws-0042.town-a.local"], users=["CORP\\jdoe"], ips=["10.20.30.40", "203.0.113.9"],
        domains=["evil.example.net"], hashes=[MD5, IMPHASH, SHA256], alert_ids=["a1", "a2"], rule_ids=["r1"],
        first_seen=SIGNIFICANT - timedelta(hours=3), last_seen=SIGNIFICANT - timedelta(hours=2),
        created_at=SIGNIFICANT - timedelta(hours=1), significant_at=significant, nis2=True, gdpr=True,
        assignee="alice.analyst")
    steps = (
        StepRecord("credential-dumping", "isolate-host", "Isolate the host the dump ran on", Phase.containment,
                   StepStatus.done, note="isolated ws-0042 from 10.20.30.40", by="alice.analyst",
                   at=SIGNIFICANT + timedelta(minutes=20)),
        StepRecord("credential-dumping", "reset-exposed-credentials", "Reset every exposed credential",
                   Phase.containment, StepStatus.todo),
        StepRecord("credential-dumping", "nis2-early-warning", "Send the NIS2 early warning", Phase.notification,
                   StepStatus.todo),
    )
    deadlines = tuple(regulatory_deadlines(incident, RegulatoryFlags(nis2=True, gdpr=True), now))
    notes = tuple(Comment(id=f"c{index}", tenant="town-a", incident_id="inc-1", author="bob.dpo", text=text,
                          created_at=SIGNIFICANT + timedelta(minutes=index)) for index, text in enumerate(comments))
    events = (Event(id="e1", tenant="town-a", timestamp=SIGNIFICANT,
                    fields={"process": {"hash": {"md5": MD5, "sha256": SHA256}, "pe": {"imphash": IMPHASH}}}),)
    return IncidentCase(IncidentFacts(incident, steps, deadlines, ("credential-dumping",)), "Town A",
                        comments=notes, events=events)


def context(now: datetime = SIGNIFICANT + timedelta(hours=30), redacted: bool = False,
            tlp: Tlp = Tlp.amber) -> ExportContext:
    return ExportContext(period=TimeRange(SIGNIFICANT - timedelta(days=1), now), tenants=("town-a",), tlp=tlp,
                         redacted=redacted, generated_at=now, generated_by="test")


def test_each_draft_lists_exactly_what_the_text_needs_and_civicsoc_cannot_know() -> None:
    case = make_case()
    drafts = {kind: draft_notification(kind, case, context()) for kind in NotificationKind}
    assert drafts[NotificationKind.nis2_early_warning].missing == ["contact_point"]
    assert drafts[NotificationKind.nis2_notification].missing == ["contact_point", "impact"]
    assert drafts[NotificationKind.nis2_final_report].missing == ["contact_point", "impact"]
    assert drafts[NotificationKind.gdpr_art33].missing == [
        "contact_point", "nature_of_breach", "data_subject_categories", "data_subjects_approx", "record_categories",
        "records_approx", "likely_consequences"]
    early = drafts[NotificationKind.nis2_early_warning]
    assert early.suspected_malicious_act is True and "T1003.001" in early.sources["suspected_malicious_act"]
    assert early.cross_border_impact is False and early.sources["cross_border_impact"].startswith("comment by bob.dpo")
    assert early.aware_at == SIGNIFICANT and early.due_at == SIGNIFICANT + timedelta(hours=24)
    assert early.deadline_status == "missed"  # 30 h after becoming aware, nothing submitted
    notification = drafts[NotificationKind.nis2_notification]
    assert {(ioc.kind, ioc.value) for ioc in notification.indicators_of_compromise} == {
        ("ipv4", "10.20.30.40"), ("ipv4", "203.0.113.9"), ("domain", "evil.example.net"), ("md5", MD5),
        ("imphash", IMPHASH), ("sha256", SHA256)}
    final = drafts[NotificationKind.nis2_final_report]
    assert final.mitigation_applied == ["Isolate the host the dump ran on (2026-03-10 06:20 UTC): isolated ws-0042 "
                                        "from 10.20.30.40"]
    assert final.mitigation_ongoing == ["Reset every exposed credential"]
    assert any("still ongoing" in warning for warning in final.warnings)  # contained, not resolved: Art. 23(4)(e)
    gdpr = drafts[NotificationKind.gdpr_art33]
    assert gdpr.measures_proposed == ["Reset every exposed credential"]
    assert gdpr.due_at == SIGNIFICANT + timedelta(hours=72)


def test_gdpr_needs_reasons_for_a_delay_only_once_72_hours_have_passed() -> None:
    late = SIGNIFICANT + timedelta(hours=80)
    draft = draft_notification(NotificationKind.gdpr_art33, make_case(now=late), context(now=late))
    assert draft.missing[-1] == "delay_reasons"
    filled = make_case(now=late, comments=("delay reasons: the breach was found in a backup audit",))
    assert "delay_reasons" not in draft_notification(NotificationKind.gdpr_art33, filled, context(now=late)).missing


def test_comments_fill_fields_and_the_latest_comment_wins() -> None:
    case = make_case(comments=(
        "cross-border impact: no",
        "Contact point: CISO Town A, ciso@town-a.example, +32 2 555 01 23\nImpact: permit service down 3 hours",
        "cross-border impact: yes (the attacker used the regional shared service)",
        "data subjects approx: about 1,200\ndata subject categories: residents; applicants\nsuspected malicious "
        "act: maybe",
    ))
    notification = draft_notification(NotificationKind.nis2_notification, case, context())
    assert notification.missing == []
    assert notification.cross_border_impact is True and notification.impact == "permit service down 3 hours"
    assert notification.suspected_malicious_act is True  # "maybe" is not yes or no: the prefilled value stays
    assert "not read" in notification.sources["suspected_malicious_act"]
    gdpr = draft_notification(NotificationKind.gdpr_art33, case, context())
    assert gdpr.data_subjects_approx == "about 1,200" and gdpr.data_subject_categories == ["residents", "applicants"]
    assert "data_subjects_approx" not in gdpr.missing and "record_categories" in gdpr.missing


def test_an_unconfirmed_incident_without_techniques_needs_everything() -> None:
    case = make_case(comments=(), techniques=(), significant=None)
    draft = draft_notification(NotificationKind.nis2_early_warning, case, context())
    assert draft.missing == ["aware_at", "contact_point", "suspected_malicious_act", "cross_border_impact"]
    assert any("not been confirmed significant" in warning for warning in draft.warnings)


def test_a_redacted_draft_keeps_indicators_and_loses_people_hosts_and_internal_addresses() -> None:
    case = make_case(comments=("contact point: ciso@town-a.example",))
    staff = [c.author for c in case.comments] + [s.by for s in case.facts.steps if s.by]
    redactor = Redactor.for_incidents(KEY, [case.incident], staff=staff)
    for kind in NotificationKind:
        text = draft_notification(kind, case, context(redacted=True), redactor).model_dump_json()
        for personal in ("jdoe", "ws-0042", "10.20.30.40", "ciso@", "alice", "bob.dpo"):
            assert personal not in text.lower(), (kind, personal)
    text = draft_notification(NotificationKind.nis2_notification, case, context(redacted=True),
                              redactor).model_dump_json()
    for kept in ("203.0.113.9", "evil.example.net", MD5, SHA256, redactor.user("jdoe"), redactor.host("ws-0042")):
        assert kept in text


def _patterns(bundle: stix2.Bundle) -> set[str]:
    return {obj.pattern for obj in bundle.objects if obj.type == "indicator"}


def test_stix_bundle_validates_with_typed_hash_patterns_and_the_tlp_2_marking() -> None:
    case = make_case()
    bundle = incident_bundle(case, context())
    parsed = stix2.parse(bundle.serialize(), allow_custom=False)
    assert _patterns(parsed) == {
        "[ipv4-addr:value = '10.20.30.40']", "[ipv4-addr:value = '203.0.113.9']",
        "[domain-name:value = 'evil.example.net']", f"[file:hashes.MD5 = '{MD5}']",
        f"[file:extensions.'windows-pebinary-ext'.imphash = '{IMPHASH}']", f"[file:hashes.'SHA-256' = '{SHA256}']"}
    # the published OASIS TLP 2.0 AMBER definition, and every other object marked with it
    assert TLP2_IDS[Tlp.amber] == "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
    markings = [obj for obj in parsed.objects if obj.type == "marking-definition"]
    assert [m.id for m in markings] == [TLP2_IDS[Tlp.amber]] and markings[0].name == "TLP:AMBER"
    assert all(obj.object_marking_refs == [TLP2_IDS[Tlp.amber]] for obj in parsed.objects
               if obj.type != "marking-definition")
    report = next(obj for obj in parsed.objects if obj.type == "report")
    assert set(report.object_refs) == {obj.id for obj in parsed.objects if obj.type in ("indicator", "attack-pattern",
                                                                                         "identity")}
    technique = next(obj for obj in parsed.objects if obj.type == "attack-pattern")
    assert technique.external_references[0].external_id == "T1003.001"
    # the same incident exported again later: same ids, so a receiving platform updates rather than duplicates
    later = incident_bundle(case, context(now=SIGNIFICANT + timedelta(days=3)))
    assert {o.id for o in later.objects} == {o.id for o in bundle.objects}


def test_a_redacted_stix_bundle_withholds_internal_indicators() -> None:
    case = make_case()
    redactor = Redactor.for_incidents(KEY, [case.incident])
    bundle = incident_bundle(case, context(redacted=True, tlp=Tlp.green), redactor)
    parsed = stix2.parse(bundle.serialize(), allow_custom=False)
    assert "[ipv4-addr:value = '10.20.30.40']" not in _patterns(parsed)
    assert "[ipv4-addr:value = '203.0.113.9']" in _patterns(parsed) and len(_patterns(parsed)) == 5
    text = json.dumps(json.loads(bundle.serialize())).lower()
    for personal in ("jdoe", "ws-0042", "10.20.30.40"):
        assert personal not in text
    assert "1 internal indicators" in text and TLP2_IDS[Tlp.green] in text


def test_the_cisa_draft_asks_for_the_federal_guidelines_elements() -> None:
    """CISA's Federal Incident Notification Guidelines ask for functional and information impact,
    recoverability, first detection, systems/records/users impacted, network location and a point of
    contact; attack vector, indicators and mitigation where known. The fixture knows the systems (1 host),
    the users (1 account), the indicators and one containment step done; a comment gives the location."""
    base = make_case(comments=("network location: permits VLAN 20, behind the town hall firewall",))
    incident = base.incident.model_copy(update={"techniques": ["T1003.001", "T1078.002"]})
    flags = RegulatoryFlags(regime=NotificationRegime.us_federal)
    now = SIGNIFICANT + timedelta(minutes=30)
    case = IncidentCase(IncidentFacts(incident, base.facts.steps, tuple(regulatory_deadlines(incident, flags, now)),
                                      base.facts.playbooks), base.tenant_name, comments=base.comments,
                        events=base.events)
    draft = draft_notification(NotificationKind.cisa_federal, case, context(now=now))
    assert draft.missing == ["contact_point", "functional_impact", "information_impact", "recoverability",
                             "records_affected"]
    assert (draft.systems_affected, draft.users_affected) == (1, 1)
    assert draft.network_location == "permits VLAN 20, behind the town hall firewall"
    assert draft.attack_vectors == ["ATT&CK T1078.002"]  # Valid Accounts is initial access; T1003 is not
    assert draft.mitigation_activities == ["Isolate the host the dump ran on (2026-03-10 06:20 UTC): isolated "
                                           "ws-0042 from 10.20.30.40"]
    assert (draft.due_at, draft.deadline_status) == (SIGNIFICANT + timedelta(hours=1), "open")
    assert not any("NIS2" in warning for warning in draft.warnings)
