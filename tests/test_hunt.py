"""`civicsoc hunt`, `civicsoc rules check` and detection on ingest, as users run them, on real rules and
real attack samples (SigmaHQ regression data: each folder's .evtx MUST fire its rule)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from civicsoc.store import RecordQuery, Scope
from civicsoc.store.elasticsearch import ElasticsearchStore
from civicsoc.store.sqlite import SqliteStore
from tests.test_ingest import SHARED, run

SIGMA_RULES = SHARED / "sigmahq-sigma" / "rules" / "windows"
REGRESSION = SHARED / "sigmahq-regression-data"


def regression_cases(count: int) -> list[tuple[Path, str]]:
    """(evtx file, rule id that must fire) for the first ``count`` Windows regression folders."""
    cases = []
    for info in sorted((REGRESSION / "regression_data" / "rules" / "windows").rglob("info.yml")):
        data = yaml.safe_load(info.read_text())
        evtx = [REGRESSION / test["path"] for test in data["regression_tests_info"] if test["type"] == "evtx"]
        if evtx and evtx[0].exists():
            cases.append((evtx[0], data["rule_metadata"][0]["id"]))
        if len(cases) == count:
            break
    return cases


@pytest.fixture(scope="module")
def cases() -> list[tuple[Path, str]]:
    found = regression_cases(8)
    assert len(found) == 8
    return found


def test_hunting_files_fires_each_regression_rule(cases: list[tuple[Path, str]], tmp_path: Path) -> None:
    code, out, err = run("hunt", *(str(evtx) for evtx, _ in cases), "--rules", str(SIGMA_RULES),
                         env={"CIVICSOC_DATA_DIR": str(tmp_path)})
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    fired = {(row["source"], row["rule"]["id"]) for row in rows}
    for evtx, rule_id in cases:
        assert (str(evtx), rule_id) in fired, f"{rule_id} did not fire on {evtx.name}"
    row = rows[0]
    assert row["event"]["event"]["id"] == row["event.id"]
    assert row["record_id"] == row["event"]["winlog"]["record_id"]
    summary = err.strip().splitlines()[-1]
    assert f" events, {len(rows)} matches, " in summary and f"({len(cases)} files, 0 unreadable records)" in summary


def test_csv_and_min_level(cases: list[tuple[Path, str]], tmp_path: Path) -> None:
    env = {"CIVICSOC_DATA_DIR": str(tmp_path)}
    files = [str(evtx) for evtx, _ in cases]
    code, out, _ = run("hunt", *files, "--rules", str(SIGMA_RULES), "--format", "csv", env=env)
    assert code == 0
    header, *lines = out.splitlines()
    assert header.startswith("timestamp,rule_level,rule_title")
    code, high, _ = run("hunt", *files, "--rules", str(SIGMA_RULES), "--format", "csv", "--min-level", "high",
                        env=env)
    high_lines = high.splitlines()[1:]
    levels_all = [line.split(",")[1] for line in lines]
    assert len(high_lines) == sum(level in ("high", "critical") for level in levels_all)


def test_rules_check_reports_loaded_and_skipped(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("title: Broken\nlogsource:\n  product: windows\ndetection:\n  sel:\n    a: 1\n"
                      "  condition: sel and\n")
    good = SHARED / "sigmahq-sigma" / "rules" / "windows" / "builtin" / "security"
    code, out, err = run("rules", "check", str(good), str(broken), env={"CIVICSOC_DATA_DIR": str(tmp_path)})
    assert code == 0
    expected_files = len(list(good.rglob("*.yml"))) + 1
    assert err.strip().startswith(f"{expected_files} files: ")
    assert f"skipped {broken}" in out
    assert "1 skipped" in err


def test_ingest_raises_alerts_and_incidents_and_a_store_hunt_finds_them_again(
        cases: list[tuple[Path, str]], tmp_path: Path) -> None:
    env = {"CIVICSOC_DATA_DIR": str(tmp_path)}
    files = [str(evtx) for evtx, _ in cases]
    code, out, err = run("ingest", *files, "--tenant", "ministry", "--rules", str(SIGMA_RULES), "--json", env=env)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["alerts"] > 0
    store = SqliteStore(f"sqlite:///{tmp_path / 'civicsoc.db'}")
    alerts = store.alerts.list(Scope.of("ministry"), RecordQuery(limit=5000)).items
    assert len(alerts) == summary["alerts"]
    assert {rule_id for _, rule_id in cases} <= {a.record.rule_id for a in alerts}
    incidents = store.incidents.list(Scope.of("ministry"), RecordQuery(limit=5000)).items
    assert incidents and all(a.record.incident_id for a in alerts)
    # a retro-hunt over the same events raises nothing new: the alerts are known by id
    code, out, err = run("hunt", "--rules", str(SIGMA_RULES), "--from", "2000-01-01", env=env)
    assert code == 0, err
    assert f"{len(alerts)} already raised" in out and " 0 new alerts" in out
    store.close()


def test_a_store_hunt_on_elasticsearch_runs_converted_queries(es_url: str, cases: list[tuple[Path, str]],
                                                              tmp_path: Path) -> None:
    from elasticsearch import Elasticsearch

    prefix = f"test-{uuid.uuid4().hex[:8]}"
    env = {"CIVICSOC_DATA_DIR": str(tmp_path), "CIVICSOC_STORE": es_url, "CIVICSOC_STORE__INDEX_PREFIX": prefix}
    files = [str(evtx) for evtx, _ in cases]
    try:
        code, _, err = run("ingest", *files, "--tenant", "ministry", env=env)
        assert code == 0, err
        Elasticsearch(es_url).indices.refresh(index=f"{prefix}-*")
        code, out, err = run("hunt", "--rules", str(SIGMA_RULES), "--from", "2000-01-01", env=env)
        assert code == 0, err
        client = Elasticsearch(es_url)
        client.indices.refresh(index=f"{prefix}-*")
        hits = client.search(index=f"{prefix}-alerts", size=5000)["hits"]["hits"]
        rule_ids = {hit["_source"]["rule_id"] for hit in hits}
        assert {rule_id for _, rule_id in cases} <= rule_ids, out
    finally:
        ElasticsearchStore(es_url, prefix=prefix).drop()
