"""Compliance exports over HTTP and from the CLI, on a store built from real EVTX (tests/api_support.py: five
attack recordings through the real detection pipeline for town-a and town-b).

Before the exports, town-a's incidents are worked through the real workflow (civicsoc.triage and the
playbook service): one acknowledged, one resolved, one a false positive, and the lateral-movement one made
significant with NIS2 and GDPR flags, a containment step and the NIS2 early warning done, and comments
that fill notification fields. One extra incident is stored by hand because none of the recordings yields IP
addresses or e-mail addresses: it carries an internal and a public address and a mailbox, so redaction has
something to remove and something to keep.

Expected values come from the API's own incident list (what an analyst sees), the raw EVTX (read with
python-evtx, independently of civicsoc's reader) and hand-picked times; pages of the PDFs are rendered with
pdftoppm into test-output/reports/ for people to look at.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import Evtx.Evtx as PythonEvtx
import httpx
import pandas as pd
import pytest
import stix2
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from civicsoc import audit, triage
from civicsoc.event import parse_timestamp
from civicsoc.records import AuditRecord, Incident, IncidentStatus, Role, Severity
from civicsoc.store import RecordQuery, Scope, Store
from civicsoc.tokens import create_tenant, create_token
from detection.rules import load_rules
from playbooks.loader import load_playbooks
from playbooks.service import attach_matching, set_step
from reports import service
from reports.redaction import Redactor, is_personal_user
from reports.service import PeriodRequest
from tests.api_support import EVTX, SIGMA, Soc, build_soc, ingest, open_backend, soc_rules

KEY = b"test-redaction-key-0123456789abcdef"
OUTPUT = Path(__file__).resolve().parents[1] / "test-output" / "reports"
ACTOR = "analyst-town-a (setup)"
SHARING = "inc-sharing-fixture"
PERSONAL = ("10.20.30.40", "jane.doe", "ws-0042", "jdoe")
API = "/api/v1/reports"


def _find(store: Store, tenant: str, words: str) -> Incident:
    page = store.incidents.list(Scope.of(tenant), RecordQuery(limit=500))
    return next(item.record for item in page.items if words in item.record.title)


def _version(store: Store, incident_id: str) -> str:
    return store.incidents.get(Scope.all(), incident_id).version


def _work_through(soc: Soc) -> None:
    store, scope = soc.store, Scope.of("town-a")
    library = soc.client.app.state.services.playbooks
    for item in store.incidents.list(scope, RecordQuery(limit=500)).items:
        attach_matching(store, library, item.record, tags=item.record.tags)
    lateral = _find(store, "town-a", "Cleared on ie10win7")
    triage.change_status(store, scope, ACTOR, lateral.id, IncidentStatus.acknowledged, _version(store, lateral.id))
    triage.mark_significant(store, scope, ACTOR, lateral.id, True, _version(store, lateral.id),
                            at=datetime.now(UTC) - timedelta(hours=2))
    triage.set_regulatory(store, scope, ACTOR, lateral.id, _version(store, lateral.id), nis2=True, gdpr=True)
    run_id = f"{lateral.id}.lateral-movement"
    set_step(store, scope, run_id, "contain-account-and-hosts", "done", "disabled IEUser, isolated ie10win7", ACTOR)
    set_step(store, scope, run_id, "nis2-early-warning", "done", "CSIRT reference 2026-17", ACTOR)
    triage.add_comment(store, scope, ACTOR, lateral.id,
                       "cross-border impact: no\ncontact point: CISO Town A, ciso@town-a.example, +32 2 555 01 23")
    resolved = _find(store, "town-a", "desktop-jr78rlp")
    for status in (IncidentStatus.acknowledged, IncidentStatus.contained, IncidentStatus.resolved):
        triage.change_status(store, scope, ACTOR, resolved.id, status, _version(store, resolved.id))
    spurious = _find(store, "town-a", "sec504student")
    triage.change_status(store, scope, ACTOR, spurious.id, IncidentStatus.false_positive, _version(store, spurious.id))
    account = _find(store, "town-a", "New Account Made Administrator")
    triage.change_status(store, scope, ACTOR, account.id, IncidentStatus.acknowledged, _version(store, account.id))
    now = datetime.now(UTC)
    store.incidents.create(scope, Incident(
        id=SHARING, tenant="town-a", title="Mailbox export by CORP\\jdoe on ws-0042 from 10.20.30.40",
        severity=Severity.medium, users=["CORP\\jdoe", "jane.doe@town-a.example"], hosts=["ws-0042.town-a.local"],
        ips=["10.20.30.40", "203.0.113.9"], domains=["exfil.example.net"],
        hashes=["e16b9d201ec1d7e29b3ad532a9ad8f1ae0cb5821bb916a79f6dbeb1c6e6b85fa"], techniques=["T1114.002"],
        tactics=["collection"], first_seen=now - timedelta(hours=5), last_seen=now - timedelta(hours=4),
        created_at=now - timedelta(hours=3), updated_at=now))
    store.refresh()


@pytest.fixture(scope="module")
def soc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Soc]:
    backend = open_backend("sqlite", tmp_path_factory.mktemp("reports"), None)
    store = next(backend)
    try:
        soc = build_soc(store, soc_rules())
        soc.client.app.state.services.extra["redaction_key"] = KEY
        _work_through(soc)
        yield soc
    finally:
        backend.close()


def get(soc: Soc, path: str, role: Role = Role.compliance, who: str = "town-a", **params: Any) -> httpx.Response:
    """``path`` under /api/v1/reports with a token of ``role`` in tenant ``who``; ``params`` is the query."""
    return soc.client.get(f"{API}{path}", params=params, headers=soc.headers(who, role))


def api_incidents(soc: Soc, tenant: str = "town-a", role: Role = Role.compliance) -> list[dict]:
    response = soc.client.get("/api/v1/incidents", params={"limit": 500}, headers=soc.headers(tenant, role))
    assert response.status_code == 200
    return response.json()["items"]


def pdf_text(content: bytes, tmp_path: Path) -> str:
    """The PDF's text as pdftotext lays it out (table rows stay on their line), runs of spaces collapsed."""
    path = tmp_path / "doc.pdf"
    path.write_bytes(content)
    result = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True)
    return "\n".join(" ".join(line.split()) for line in result.stdout.splitlines())


def save_first_page(content: bytes, name: str, tmp_path: Path) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    pdf = tmp_path / f"{name}.pdf"
    pdf.write_bytes(content)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                    str(OUTPUT / name)], check=True)
    return OUTPUT / f"{name}.png"


# the register ---------------------------------------------------------------------------------------


def test_register_files_re_read_with_pandas_equal_the_api_incident_list(soc: Soc) -> None:
    expected = {item["id"]: item for item in api_incidents(soc)}
    assert len(expected) == 6  # five from the recordings, one stored by hand

    csv = get(soc, "/register", format="csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["content-disposition"].startswith('attachment; filename="civicsoc-register_')
    assert csv.headers["x-tlp"] == "TLP:AMBER" and csv.headers["cache-control"] == "no-store"
    frame = pd.read_csv(io.BytesIO(csv.content))
    assert set(frame["tlp"]) == {"TLP:AMBER"} and set(frame["tenant"]) == {"town-a"}

    workbook = get(soc, "/register", format="xlsx")
    sheets = pd.read_excel(io.BytesIO(workbook.content), sheet_name=None)
    assert list(sheets) == ["Summary", "town-a", "About"]
    sheet = sheets["town-a"]

    document = get(soc, "/register", format="json").json()
    assert document["tlp"] == "TLP:AMBER" and document["redacted"] is False and document["tenants"] == ["town-a"]
    records = pd.DataFrame(document["incidents"])

    for rows in (frame, sheet, records):
        assert sorted(rows["incident_id"]) == sorted(expected)
        indexed = rows.set_index("incident_id")
        for incident_id, item in expected.items():
            row = indexed.loc[incident_id]
            assert row["status"] == item["status"] and row["severity"] == item["severity"]
            assert row["alerts"] == len(item["alert_ids"]) and row["hosts_affected"] == len(item["hosts"])
            assert row["nis2"] == item["nis2"]
            if item["acknowledged_at"]:
                seen = pd.Timestamp(row["acknowledged"])
                seen = seen.tz_localize("UTC") if seen.tzinfo is None else seen
                assert abs(seen - pd.Timestamp(item["acknowledged_at"])) < pd.Timedelta(seconds=1)
            else:
                assert pd.isna(row["acknowledged"])
    # spreadsheet cells are typed: Excel dates and integers, not text
    assert pd.api.types.is_datetime64_any_dtype(sheet["detected"]) and sheet["alerts"].dtype.kind == "i"
    summary = sheets["Summary"].set_index("tenant")
    statuses = Counter(item["status"] for item in expected.values())
    assert summary.loc["town-a", "incidents"] == len(expected) == summary.loc["all", "incidents"]
    assert summary.loc["town-a", "resolved"] == statuses["resolved"] == 1
    assert summary.loc["town-a", "false_positive"] == statuses["false_positive"] == 1


def test_the_workbook_freezes_its_header_and_stamps_tlp_on_every_sheet(soc: Soc) -> None:
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(get(soc, "/register", format="xlsx").content))
    for sheet in book.worksheets:
        assert sheet.oddHeader.center.text == "TLP:AMBER"
    assert book["town-a"].freeze_panes == "C2"
    assert book["town-a"]["H2"].is_date and book["town-a"]["H2"].number_format.lower() == "yyyy-mm-dd hh:mm:ss"
    assert book.properties.keywords == "TLP:AMBER"


def test_a_tenant_sees_only_its_own_rows_and_admin_gets_a_sheet_per_tenant(soc: Soc) -> None:
    assert get(soc, "/register", tenant="town-b").status_code == 404
    assert get(soc, "/register", tenant="town-z").status_code == 404  # the same answer as for a missing tenant
    b_ids = {item["id"] for item in api_incidents(soc, "town-b")}
    for role in (Role.compliance, Role.admin):
        own = pd.read_csv(io.BytesIO(get(soc, "/register", role=role, who="town-b", tenant="town-b").content))
        assert set(own["incident_id"]) == b_ids
    mine = get(soc, "/register", format="json").text
    assert not any(incident_id in mine for incident_id in b_ids) and "town-b" not in mine
    everything = soc.client.get(f"{API}/register", params={"format": "xlsx"}, headers=soc.admin_headers)
    sheets = pd.read_excel(io.BytesIO(everything.content), sheet_name=None)
    assert list(sheets) == ["Summary", "town-a", "town-b", "About"]
    assert set(sheets["town-b"]["incident_id"]) == b_ids


@pytest.mark.elasticsearch
def test_the_register_is_the_same_on_elasticsearch(tmp_path_factory: pytest.TempPathFactory, es_url: str) -> None:
    """Two recordings through SigmaHQ's Security-log rules into Elasticsearch: the register lists what the API
    does (a smaller rule set than the module's, to keep the Elasticsearch round trips few)."""
    backend = open_backend("elasticsearch", tmp_path_factory.mktemp("es-reports"), es_url)
    store = next(backend)
    try:
        create_tenant(store, "town-b", "Town B", "test-setup")
        ingest(store, load_rules([SIGMA / "builtin" / "security"]), "town-b",
               files=("mimikatz-privesc-hashdump.evtx", "new-user-security.evtx"))
        secret = create_token(store, tenant="town-b", role=Role.compliance, name="compliance-town-b",
                              actor="test-setup").secret
        client = TestClient(create_app(store, playbooks=load_playbooks()))
        headers = {"Authorization": f"Bearer {secret}"}
        listed = client.get("/api/v1/incidents", params={"limit": 500}, headers=headers).json()["items"]
        frame = pd.read_csv(io.BytesIO(client.get(f"{API}/register", headers=headers).content))
        assert dict(zip(frame["incident_id"], frame["status"], strict=True)) == \
            {item["id"]: item["status"] for item in listed}
        assert len(listed) >= 1 and set(frame["alerts"]) == {len(item["alert_ids"]) for item in listed}
    finally:
        backend.close()


# statistics and the PDF ------------------------------------------------------------------------------


def test_statistics_equal_figures_computed_from_the_incident_list(soc: Soc) -> None:
    items = api_incidents(soc)
    stats = get(soc, "/statistics").json()
    assert stats["incidents"] == len(items)
    assert {k: v for k, v in stats["by_status"].items() if v} == dict(Counter(item["status"] for item in items))
    assert stats["by_tactic"] == dict(sorted(Counter(t for item in items for t in item["tactics"]).items(),
                                             key=lambda kv: (-kv[1], kv[0])))

    def mean_hours(start: str, end: str) -> float:
        spans = [(parse_timestamp(item[end]) - parse_timestamp(item[start])).total_seconds() / 3600
                 for item in items if item[end] and item["status"] != "duplicate"]
        return sum(spans) / len(spans)

    times = {r["measure"]: r for r in stats["response_times"]}
    assert times["MTTA"]["incidents"] == 3  # the lateral-movement, new-account and resolved incidents
    assert times["MTTA"]["mean_hours"] == pytest.approx(mean_hours("created_at", "acknowledged_at"))
    assert times["MTTR"]["mean_hours"] == pytest.approx(mean_hours("created_at", "resolved_at"))
    assert times["MTTD"]["mean_hours"] == pytest.approx(mean_hours("first_seen", "created_at"))
    deadlines = {d["report"]: d for d in stats["deadlines"]}
    # made significant 2 h ago: the early warning was submitted (step done) within 24 h; the other three open
    assert (deadlines["nis2-early-warning"]["met"], deadlines["nis2-incident-notification"]["open"],
            deadlines["gdpr-breach-notification"]["open"]) == (1, 1, 1)


def test_the_period_pdf_holds_the_figures_of_hand_picked_times(tmp_path: Path) -> None:
    """Four incidents of March 2026: detection 1 h, 2 h, 0.5 h after the first event (MTTD 1.17 h), acknowledged
    after 0.5 h and 1 h (MTTA 0.75 h), one resolved after 4 h (MTTR 4.00 h); a fourth is a duplicate and
    does not count (worked out by hand, see test_reports_statistics.py)."""
    from civicsoc.store import TimeRange
    from civicsoc.store.sqlite import SqliteStore
    from tests.test_reports_statistics import FIXTURE

    store = SqliteStore(f"sqlite:///{tmp_path / 'hand.db'}")
    store.setup()
    try:
        for tenant in ("town-a", "town-b"):
            create_tenant(store, tenant, f"Town {tenant[-1].upper()}", "test")
        store.incidents.create_many(Scope.all(), FIXTURE)
        period = TimeRange(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
        file = service.pdf_export(store, None, Scope.all(), "compliance officer", PeriodRequest(period),
                                  now=datetime(2026, 4, 1, tzinfo=UTC))
    finally:
        store.close()
    text = pdf_text(file.content, tmp_path)
    for figure in ("Incidents: 4 (2 open)", "Mean time to acknowledge: 0.75 h",
                   "MTTD (first event -> detection) 1.17 h mean, 1.00 h median, 3 incidents",
                   "MTTA (detection -> acknowledged) 0.75 h mean, 0.75 h median, 2 incidents",
                   "MTTR (detection -> resolved) 4.00 h mean, 4.00 h median, 1 incidents",
                   "Regulatory deadlines 0 met, 0 missed, 0 open", "Incidents (4)", "TLP:AMBER"):
        assert figure in text, figure
    assert "i3 town-b incident i3" in text and "i1 town-a incident i1 critical resolved" in text


def test_the_pdf_of_the_real_data_has_every_incident_and_a_page_for_people(soc: Soc, tmp_path: Path) -> None:
    response = get(soc, "/pdf")
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    text = pdf_text(response.content, tmp_path)
    flat = " ".join(text.split())
    items = api_incidents(soc)
    assert f"Incidents: {len(items)} (" in flat and f"Incidents ({len(items)})" in flat
    assert all(item["id"] in text for item in items)
    assert "Open regulatory deadlines" in flat and "NIS2 incident notification" in flat
    stats = get(soc, "/statistics").json()
    mtta = next(r for r in stats["response_times"] if r["measure"] == "MTTA")
    assert f"{mtta['mean_hours']:.2f} h mean" in flat
    assert flat.count("TLP:AMBER") >= 5  # cover and every page header and footer
    page = save_first_page(response.content, "period-report", tmp_path)
    assert page.stat().st_size > 5_000


# notifications and STIX --------------------------------------------------------------------------------


def test_notification_drafts_are_prefilled_from_the_workflow(soc: Soc, tmp_path: Path) -> None:
    lateral = _find(soc.store, "town-a", "Cleared on ie10win7")
    early = get(soc, f"/incidents/{lateral.id}/notifications/nis2-early-warning").json()
    # aware (significant), malicious act (ATT&CK techniques), cross-border and contact point (the comment)
    assert early["missing"] == []
    assert early["deadline_status"] == "met" and early["submitted_at"] is not None
    assert early["contact_point"].startswith("CISO Town A") and early["cross_border_impact"] is False
    notification = get(soc, f"/incidents/{lateral.id}/notifications/nis2-notification").json()
    assert notification["missing"] == ["impact"]
    final = get(soc, f"/incidents/{lateral.id}/notifications/nis2-final-report").json()
    assert final["missing"] == ["impact"]
    assert final["mitigation_applied"][0].startswith("Disable the account and isolate the hosts")
    gdpr = get(soc, f"/incidents/{lateral.id}/notifications/gdpr-art33").json()
    assert gdpr["missing"] == ["nature_of_breach", "data_subject_categories", "data_subjects_approx",
                               "record_categories", "records_approx", "likely_consequences"]
    assert gdpr["measures_taken"] and gdpr["measures_proposed"]
    document = get(soc, f"/incidents/{lateral.id}/notifications/nis2-notification", format="pdf")
    assert document.headers["content-type"] == "application/pdf"
    text = " ".join(pdf_text(document.content, tmp_path).split())
    assert "DRAFT - NIS2 incident notification" in text and "To fill in before sending impact" in text
    assert "Art. 23(4)(b)" in text and "ie10win7" in text
    save_first_page(document.content, "nis2-notification", tmp_path)


def _raw_sysmon_hashes() -> dict[str, str]:
    """Every hash in the Sysmon recording's raw ``Hashes`` fields, read with python-evtx: value → kind."""
    kinds = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256", "IMPHASH": "imphash"}
    found: dict[str, str] = {}
    with PythonEvtx.Evtx(str(EVTX / "sliver-sysmon.evtx")) as log:
        for record in log.records():
            for field in re.findall(r'<Data Name="Hashes">([^<]*)</Data>', record.xml()):
                for pair in field.split(","):
                    name, _, value = pair.partition("=")
                    found[value.lower()] = kinds[name]
    return found


def test_the_stix_bundle_of_a_real_incident_validates_and_carries_its_hashes(soc: Soc) -> None:
    incident = _find(soc.store, "town-a", "Suspicious Eventlog Clearing")
    assert incident.hashes
    response = get(soc, f"/incidents/{incident.id}/stix")
    assert response.headers["content-type"] == "application/stix+json;version=2.1"
    bundle = stix2.parse(response.text, allow_custom=False)
    indicators = [obj for obj in bundle.objects if obj.type == "indicator"]
    raw = _raw_sysmon_hashes()
    expected = {(raw[value], value) for value in incident.hashes}
    assert len(expected) == len(incident.hashes) == len(indicators)
    properties = {"md5": "file:hashes.MD5", "sha256": "file:hashes.'SHA-256'",
                  "imphash": "file:extensions.'windows-pebinary-ext'.imphash"}
    assert {indicator.pattern for indicator in indicators} == {f"[{properties[kind]} = '{value}']"
                                                               for kind, value in expected}
    assert all(indicator.valid_from == incident.first_seen for indicator in indicators)
    assert {obj.external_references[0].external_id for obj in bundle.objects if obj.type == "attack-pattern"} \
        == set(incident.techniques)


def test_another_tenants_incident_is_not_found(soc: Soc) -> None:
    theirs = api_incidents(soc, "town-b")[0]["id"]
    for path in (f"/incidents/{theirs}/stix", f"/incidents/{theirs}/notifications/gdpr-art33"):
        for redact in (False, True):
            response = get(soc, path, redact=redact)
            assert response.status_code == 404, (path, response.text)
    assert get(soc, f"/incidents/{theirs}/stix", role=Role.admin).status_code == 200


# redaction and permissions ------------------------------------------------------------------------------


def test_redacted_exports_keep_indicators_and_no_personal_data(soc: Soc, tmp_path: Path) -> None:
    incidents = api_incidents(soc)
    people = {user for item in incidents for user in item["users"] if is_personal_user(user)}
    people |= {host for item in incidents for host in item["hosts"]}
    people |= {"10.20.30.40", "jane.doe@town-a.example", "ciso@town-a.example", ACTOR}
    texts = {
        "csv": get(soc, "/register", redact=True).text,
        "json": get(soc, "/register", format="json", redact=True).text,
        "pdf": pdf_text(get(soc, "/pdf", redact=True).content, tmp_path),
        "notification": get(soc, f"/incidents/{SHARING}/notifications/nis2-notification", redact=True).text,
        "lateral": get(soc, f"/incidents/{_find(soc.store, 'town-a', 'ie10win7').id}/notifications/"
                            "nis2-final-report", redact=True).text,
        "stix": get(soc, f"/incidents/{SHARING}/stix", redact=True, tlp="green").text,
    }
    for name, text in texts.items():
        for value in people:
            bare = value.rsplit("\\", 1)[-1].lower()
            assert bare not in text.lower(), (name, value)
    assert "203.0.113.9" in texts["notification"] and "203.0.113.9" in texts["stix"]
    assert "e16b9d201ec1d7e29b3ad532a9ad8f1ae0cb5821bb916a79f6dbeb1c6e6b85fa" in texts["stix"]
    # one value, one token across the export's formats (and the key is the app's)
    token = Redactor(KEY).host("ws-0042.town-a.local")
    assert token in texts["csv"] and token in texts["json"] and token in texts["notification"]
    csv = pd.read_csv(io.BytesIO(get(soc, "/register", redact=True).content)).set_index("incident_id")
    assert csv.loc[SHARING, "hosts"] == token and csv.loc[SHARING, "hosts_affected"] == 1
    # without redaction the same files do carry the values (so the checks above can fail)
    plain = get(soc, f"/incidents/{SHARING}/notifications/nis2-notification").text
    assert "10.20.30.40" in plain and "jdoe" in plain


def test_roles_without_export_get_only_redacted_files(soc: Soc) -> None:
    sharing_paths = ["/register", "/statistics", "/pdf", f"/incidents/{SHARING}/notifications/nis2-early-warning",
                     f"/incidents/{SHARING}/stix"]
    for role in (Role.viewer, Role.analyst):
        for path in sharing_paths:
            refused = get(soc, path, role=role)
            assert refused.status_code == 403, (role, path)
            assert refused.json()["detail"].startswith(f"the {role.value} role may not export unredacted")
            assert get(soc, path, role=role, redact=True).status_code == 200, (role, path)
    for path in sharing_paths:
        assert get(soc, path, role=Role.collector, redact=True).status_code == 403
    refused = get(soc, "/register", tlp="green")
    assert refused.status_code == 422 and "TLP:GREEN" in refused.json()["detail"]
    assert get(soc, "/register", tlp="amber strict").headers["x-tlp"] == "TLP:AMBER+STRICT"
    assert get(soc, "/register", tlp="purple").status_code == 422


def test_every_export_leaves_an_audit_record_with_the_file_hash(soc: Soc) -> None:
    def exports() -> list[AuditRecord]:
        return [r for r in audit.iter_chain(soc.store) if r.action.startswith("report.")]

    before = len(exports())
    lateral = _find(soc.store, "town-a", "ie10win7").id
    responses = [get(soc, "/register", format="xlsx", **{"from": "2020-01-01T00:00:00Z"}),
                 get(soc, "/statistics", role=Role.viewer, redact=True, tlp="green"),
                 get(soc, "/pdf"),
                 get(soc, f"/incidents/{lateral}/notifications/gdpr-art33", format="pdf"),
                 get(soc, f"/incidents/{lateral}/stix", tlp="red")]
    assert all(response.status_code == 200 for response in responses)
    records = exports()[before:]
    assert [r.action for r in records] == ["report.register", "report.statistics", "report.pdf",
                                           "report.notification", "report.stix"]
    assert all(r.tenant == "town-a" for r in records)
    assert records[0].actor.startswith("compliance-town-a") and records[1].actor.startswith("viewer-town-a")
    assert records[0].after["from"] == "2020-01-01T00:00:00.000000Z" and records[0].after["tenants"] == ["town-a"]
    assert (records[0].after["format"], records[0].after["redacted"], records[0].after["tlp"]) == \
        ("xlsx", False, "TLP:AMBER")
    assert (records[1].after["redacted"], records[1].after["tlp"]) == (True, "TLP:GREEN")
    assert records[3].target == f"incidents/{lateral}" and records[3].after["report"] == "gdpr-art33"
    assert records[4].after["tlp"] == "TLP:RED"
    for record, response in zip(records, responses, strict=True):
        assert record.after["sha256"] == hashlib.sha256(response.content).hexdigest()
        assert response.headers["content-disposition"].endswith(f'filename="{record.after["file"]}"')
    assert audit.verify(audit.iter_chain(soc.store)).ok


def test_the_cli_exports_as_the_api_does_and_audits_as_cli(soc: Soc, tmp_path: Path) -> None:
    from civicsoc.commands.report import report_app

    copy = tmp_path / "copy.db"
    # a copy (with the SQLite backup API: the store runs in WAL mode), so the module's store stays as it was
    with sqlite3.connect(soc.store.url.removeprefix("sqlite:///")) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    env = {"CIVICSOC_STORE": f"sqlite:///{copy}", "CIVICSOC_DATA_DIR": str(tmp_path), "CIVICSOC_CONFIG": ""}
    runner = CliRunner()
    out = tmp_path / "register.json"
    result = runner.invoke(report_app, ["register", "--format", "json", "--tenant", "town-b", "--redact",
                                        "--tlp", "green", "-o", str(out)], env=env)
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["tlp"] == "TLP:GREEN" and document["redacted"] is True
    assert sorted(row["incident_id"] for row in document["incidents"]) == \
        sorted(item["id"] for item in api_incidents(soc, "town-b"))
    assert (tmp_path / "redaction.key").is_file()  # the key was made in the data dir on first use
    stix_out = tmp_path / "bundle.json"
    incident = _find(soc.store, "town-a", "Suspicious Eventlog Clearing").id
    assert runner.invoke(report_app, ["stix", incident, "-o", str(stix_out)], env=env).exit_code == 0
    stix2.parse(stix_out.read_text(), allow_custom=False)
    refused = runner.invoke(report_app, ["register", "--tlp", "clear"], env=env)
    assert refused.exit_code != 0 and "TLP:CLEAR" in str(refused.exception)
    from civicsoc.store.sqlite import SqliteStore

    with SqliteStore(f"sqlite:///{copy}") as copied:
        actions = [(r.actor, r.action, r.tenant) for r in audit.iter_chain(copied) if r.action.startswith("report.")]
    assert actions[-2:] == [("cli", "report.register", "town-b"), ("cli", "report.stix", "town-a")]
