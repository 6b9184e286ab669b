"""`civicsoc collect`: a real collector process following real files into a real SQLite store."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from civicsoc.store import EventQuery, Scope
from civicsoc.store.sqlite import SqliteStore
from tests.test_ingest import civicsoc, run, write_ndjson
from tests.test_store_conformance import EVERYTHING


def collector_file(tmp_path: Path, log_glob: str) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text(f"""
tenant: school-district
collector_id: test01
state_dir: {tmp_path / 'state'}
flush_interval: 0.2
sources:
  - name: app
    type: tail
    format: ndjson
    paths: ["{log_glob}"]
    poll_interval: 0.1
""")
    return path


def wait_for(predicate: Callable[[], bool], timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_check_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("""tenant: City Hall
collector_id: web01
state_dir: /tmp/x
sources:
  - name: auth
    type: tail
    format: auth
    timezone: Mars/Olympus
  - name: auth
    type: syslog
    udp_port: null
    tcp_port: null
    colour: blue
""")
    code, _, err = run("collect", "--config", str(bad), "--check", env={})
    assert code == 2
    assert f"{bad}:1: tenant: String should match pattern" in err
    assert f"{bad}:5: sources[0].paths: Field required" in err
    assert f"{bad}:8: sources[0].timezone: Value error, unknown time zone 'Mars/Olympus'" in err
    assert f"{bad}:13: sources[1].colour: unknown key" in err
    assert err.startswith("error: invalid configuration, 4 problems:")
    # once each source is valid on its own, the rules across fields and sources apply
    fixed = bad.read_text().replace("City Hall", "city-hall").replace("Mars/Olympus", "UTC")
    fixed = fixed.replace("    format: auth\n", "    format: auth\n    paths: [/var/log/auth.log]\n")
    bad.write_text(fixed.replace("    colour: blue\n", ""))
    code, _out, err = run("collect", "--config", str(bad), "--check", env={})
    assert code == 2
    assert f"{bad}:10: sources[1]: Value error, give udp_port, tcp_port or tls (or several)" in err


def test_sigterm_drains_and_commits(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    write_ndjson(log, 3000)
    env = {"CIVICSOC_DATA_DIR": str(tmp_path / "data")}
    store = SqliteStore(f"sqlite:///{tmp_path / 'data' / 'civicsoc.db'}")
    store.setup()
    process = civicsoc("collect", "--config", str(collector_file(tmp_path, str(log.parent / "app.log*"))), env=env)
    count = lambda: store.count_events(Scope.of("school-district"), EventQuery(EVERYTHING))  # noqa: E731
    wait_for(lambda: count() == 3000, what="the first 3000 lines")
    write_ndjson(tmp_path / "more.ndjson", 3500)  # the same 3000 first, then 500 more
    with log.open("ab") as handle:
        handle.write(b"".join((tmp_path / "more.ndjson").read_bytes().splitlines(keepends=True)[3000:]))
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert count() == 3500
    checkpoints = json.loads((tmp_path / "state" / "checkpoints.json").read_text())
    assert [entry["offset"] for entry in checkpoints.values()] == [log.stat().st_size]
    metrics = json.loads((tmp_path / "state" / "metrics.json").read_text())
    assert metrics["sources"]["app"]["shipped"] == 3500
    store.close()


def test_sigkill_mid_file_and_restart_gives_the_exact_count(tmp_path: Path) -> None:
    kill_after = 4000
    log = tmp_path / "logs" / "app.log"
    log.parent.mkdir()
    total = write_ndjson(log, 40_000)
    env = {"CIVICSOC_DATA_DIR": str(tmp_path / "data")}
    store = SqliteStore(f"sqlite:///{tmp_path / 'data' / 'civicsoc.db'}")
    store.setup()
    count = lambda: store.count_events(Scope.all(), EventQuery(EVERYTHING))  # noqa: E731
    config = collector_file(tmp_path, str(log))
    first = civicsoc("collect", "--config", str(config), env=env)
    wait_for(lambda: count() >= kill_after, what=f"{kill_after} events")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert count() < total, "the kill came too late to test anything"
    second = civicsoc("collect", "--config", str(config), env=env)
    wait_for(lambda: count() >= total, what="the rest of the file")
    second.send_signal(signal.SIGTERM)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert count() == total
    store.close()


def test_a_syslog_source_stores_what_real_senders_send(tmp_path: Path) -> None:
    import shutil
    import subprocess

    from tests.test_cli import free_port

    logger = shutil.which("logger")
    if logger is None:
        pytest.fail("util-linux logger is needed (apt-get install bsdutils)")
    port = free_port()
    config = tmp_path / "syslog.yaml"
    config.write_text(f"""
tenant: hospital
collector_id: syslog-test
state_dir: {tmp_path / 'state'}
flush_interval: 0.2
sources:
  - name: syslog
    type: syslog
    host: 127.0.0.1
    udp_port: {port}
    tcp_port: {port}
""")
    env = {"CIVICSOC_DATA_DIR": str(tmp_path / "data")}
    store = SqliteStore(f"sqlite:///{tmp_path / 'data' / 'civicsoc.db'}")
    store.setup()
    process = civicsoc("collect", "--config", str(config), env=env)
    try:
        wait_for(lambda: _listening(port), what="the receiver")
        messages = [("--udp", "--rfc3164", "sshd[4242]: Failed password for invalid user admin from 203.0.113.9 "
                     "port 50122 ssh2"),
                    ("--tcp", "--rfc5424", "sshd[4243]: Accepted publickey for ana from 198.51.100.7 port 40022 ssh2"),
                    ("--tcp", "--rfc3164", "sudo:      ana : TTY=pts/0 ; PWD=/home/ana ; USER=root ; "
                     "COMMAND=/usr/bin/systemctl stop backup")]
        for transport, form, text in messages:
            subprocess.run([logger, "-n", "127.0.0.1", "-P", str(port), transport, form, "-t", text.split(":")[0],
                            text.split(": ", 1)[1]], check=True, timeout=10)
        count = lambda: store.count_events(Scope.of("hospital"), EventQuery(EVERYTHING))  # noqa: E731
        wait_for(lambda: count() == 3, what="three syslog events")
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    failed = store.search_events(Scope.of("hospital"), EventQuery.where(EVERYTHING, {"source.ip": "203.0.113.9"}))
    assert len(failed.items) == 1
    assert failed.items[0].fields["event"]["outcome"] == "failure"
    assert failed.items[0].fields["user"]["name"] == "admin"
    accepted = store.search_events(Scope.of("hospital"), EventQuery.where(EVERYTHING, {"user.name": "ana"}))
    assert {e.fields["event"]["outcome"] for e in accepted.items} >= {"success"}
    sudo = store.search_events(Scope.of("hospital"), EventQuery.where(EVERYTHING, {"process.name": "sudo"}))
    assert sudo.items[0].fields["process"]["command_line"] == "/usr/bin/systemctl stop backup"
    store.close()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
