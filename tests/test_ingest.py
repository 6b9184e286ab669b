"""`civicsoc ingest` as a user runs it: a real process, real files, real stores — and real outages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bench.sample_events import otrf_events
from civicsoc.errors import CivicsocError
from civicsoc.store import EventQuery, Scope, Terms
from civicsoc.store.elasticsearch import ElasticsearchStore
from civicsoc.store.sqlite import SqliteStore
from collectors.sources import detect_kind
from tests.conftest import IN_CI
from tests.test_store_conformance import EVERYTHING

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
ZEEK = SHARED / "zeek-sample-logs" / "zeek-json"
ES_TOOL = REPO / "tools" / "elasticsearch" / "es"


def civicsoc(*args: str, env: dict[str, str], **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "civicsoc", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env}, **popen)


def run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = civicsoc(*args, env=env)
    out, err = process.communicate(timeout=600)
    return process.returncode, out, err


def count_lines(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with path.open("rb") as handle:
            total += sum(1 for line in handle if line.strip())
    return total


def test_kinds_are_told_from_content(shared_data: Path, tmp_path: Path) -> None:
    assert detect_kind(next((shared_data / "hayabusa-sample-evtx").rglob("*.evtx"))) == "evtx"
    assert detect_kind(next((shared_data / "pcap-attack").rglob("*.pcapng"))) == "pcap"
    assert detect_kind(next((shared_data / "suricata-verify-pcaps").rglob("*.pcap"))) == "pcap"
    assert detect_kind(shared_data / "loghub" / "OpenSSH" / "OpenSSH_2k.log") == "auth"
    assert detect_kind(shared_data / "loghub" / "Linux" / "Linux_2k.log") == "auth"
    assert detect_kind(shared_data / "apache-http-logs-scans" / "w3af.txt") == "access"
    assert detect_kind(next((shared_data / "otrf-security-datasets").rglob("sh_arp_cache*.log"))) == "audit"
    assert detect_kind(ZEEK / "syslog.json") == "ndjson"
    with pytest.raises(CivicsocError, match=r"PROVENANCE\.md: not a kind civicsoc knows"):
        detect_kind(shared_data / "loghub" / "PROVENANCE.md")
    (tmp_path / "empty.log").write_bytes(b"")
    with pytest.raises(CivicsocError, match="empty"):
        detect_kind(tmp_path / "empty.log")


def test_ingest_twice_stores_once(tmp_path: Path) -> None:
    env = {"CIVICSOC_DATA_DIR": str(tmp_path)}
    files = sorted(ZEEK.glob("*.json"))
    expected = count_lines(files)
    code, out, err = run("ingest", *map(str, files), "--tenant", "city-hall", "--json", env=env)
    assert code == 0, err
    first = json.loads(out)
    assert (first["files"], first["events"], first["stored"], first["dead_lettered"]) == (len(files), expected,
                                                                                       expected, 0)
    code, out, err = run("ingest", str(ZEEK), "--tenant", "city-hall", env=env)
    assert code == 0, err
    assert out.startswith(f"ingested {expected} events from {len(files)} files in ")
    assert "0 dead-lettered" in out
    assert "skipped 2 files of no known kind" in err  # the two .json.gz files
    store = SqliteStore(f"sqlite:///{tmp_path / 'civicsoc.db'}")
    assert store.count_events(Scope.of("city-hall"), EventQuery(EVERYTHING)) == expected
    store.close()


def test_a_named_file_of_unknown_kind_fails_the_command(tmp_path: Path) -> None:
    code, out, err = run("ingest", str(SHARED / "loghub" / "PROVENANCE.md"), env={"CIVICSOC_DATA_DIR": str(tmp_path)})
    assert code == 1
    assert "failed:" in err and "PROVENANCE.md: not a kind civicsoc knows" in err
    assert out.startswith("ingested 0 events from 0 files")


def write_ndjson(path: Path, count: int) -> int:
    """Real-shaped events (OTRF Windows events) as NDJSON, streamed to disk."""
    with path.open("wb") as handle:
        for event in otrf_events("x", count):
            document = dict(event.fields)
            document.pop("organization", None)
            handle.write(orjson.dumps(document) + b"\n")
    return count


def test_sigkill_mid_ingest_then_rerun_gives_the_exact_count(tmp_path: Path) -> None:
    source = tmp_path / "events.ndjson"
    total = write_ndjson(source, 60_000)
    env = {"CIVICSOC_DATA_DIR": str(tmp_path / "data")}
    store = SqliteStore(f"sqlite:///{tmp_path / 'data' / 'civicsoc.db'}")
    store.setup()
    process = civicsoc("ingest", str(source), "--tenant", "school", env=env)
    deadline = time.monotonic() + 120
    while store.count_events(Scope.all(), EventQuery(EVERYTHING)) < 5_000:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    partial = store.count_events(Scope.all(), EventQuery(EVERYTHING))
    assert 0 < partial < total
    code, out, err = run("ingest", str(source), "--tenant", "school", "--json", env=env)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["stored"] + summary["duplicates"] == total
    assert summary["stored"] == total - partial
    assert store.count_events(Scope.all(), EventQuery(EVERYTHING)) == total
    store.close()


@pytest.fixture
def es_tool(es_url: str) -> Iterator[None]:
    """Make sure the shared node is running again after a test that stops it."""
    yield
    if subprocess.run([str(ES_TOOL), "status"], capture_output=True).returncode != 0:
        subprocess.run([str(ES_TOOL), "start"], check=True, capture_output=True, timeout=300)


@pytest.mark.skipif(not ES_TOOL.exists(), reason="needs tools/elasticsearch")
def test_elasticsearch_stopped_mid_ingest_loses_nothing(es_url: str, es_tool: None, tmp_path: Path) -> None:
    if es_url != "http://127.0.0.1:9200" and not IN_CI:
        pytest.skip("stops and starts the node of tools/elasticsearch only")
    source = tmp_path / "events.ndjson"
    total = write_ndjson(source, 100_000)
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    env = {"CIVICSOC_DATA_DIR": str(tmp_path / "data"), "CIVICSOC_STORE": es_url,
           "CIVICSOC_STORE__INDEX_PREFIX": prefix}
    process = civicsoc("ingest", str(source), "--tenant", "hospital", "--json", env=env)
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_url, request_timeout=10)
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "ingest never got going"
        try:
            stored = client.count(index=f"{prefix}-events-*", allow_no_indices=True)["count"]
        except Exception:  # indices are being created: ask again
            stored = 0
        if stored >= 10_000:
            break
        time.sleep(0.2)
    subprocess.run([str(ES_TOOL), "stop"], check=True, capture_output=True, timeout=120)
    time.sleep(3)  # the ingest keeps reading and retries against a dead node
    assert process.poll() is None, "ingest must wait for the store, not give up"
    subprocess.run([str(ES_TOOL), "start"], check=True, capture_output=True, timeout=300)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    summary = json.loads(out)
    assert summary["events"] == total
    assert summary["stored"] + summary["duplicates"] == total
    client.indices.refresh(index=f"{prefix}-*")
    assert client.count(index=f"{prefix}-events-*")["count"] == total
    client.close()
    ElasticsearchStore(es_url, prefix=prefix).drop()


def test_every_shared_log_sample_ingests_with_exact_counts(tmp_path: Path) -> None:
    files = [SHARED / "loghub" / "OpenSSH" / "OpenSSH_2k.log", SHARED / "loghub" / "Linux" / "Linux_2k.log",
             *sorted((SHARED / "apache-http-logs-scans").glob("*.txt")),
             *sorted((SHARED / "otrf-security-datasets").rglob("datasets/atomic/linux/**/*.log"))]
    expected = count_lines(files)
    code, out, err = run("ingest", *map(str, files), "--tenant", "city-hall", "--json",
                         env={"CIVICSOC_DATA_DIR": str(tmp_path)})
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["files"], summary["events"], summary["dead_lettered"], summary["failed"]) == (
        len(files), expected, 0, [])
    store = SqliteStore(f"sqlite:///{tmp_path / 'civicsoc.db'}")
    by_dataset = {b.key: b.count for b in store.aggregate_events(Scope.all(), EventQuery(EVERYTHING),
                                                                 Terms("event.dataset", size=20))}
    assert by_dataset["apache.access"] == count_lines(sorted((SHARED / "apache-http-logs-scans").glob("*.txt")))
    assert by_dataset["auditd.log"] == count_lines(
        sorted((SHARED / "otrf-security-datasets").rglob("datasets/atomic/linux/**/*.log")))
    failed_ssh = store.count_events(Scope.all(), EventQuery.where(EVERYTHING, {"event.outcome": "failure",
                                                                              "event.dataset": "system.auth"}))
    assert failed_ssh > 100
    store.close()
