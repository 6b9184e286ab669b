"""The civicsoc command as a user runs it: a real process, real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "civicsoc"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_help_lists_the_subcommands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("serve", "store", "config", "version"):
        assert command in result.stdout


def test_store_check_creates_the_embedded_store(tmp_path: Path) -> None:
    result = run("store", "check", "--json", env={"CIVICSOC_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"] == "SqliteStore"
    assert (tmp_path / "civicsoc.db").is_file()


def test_an_unreachable_store_is_one_line_with_the_url_and_cause_and_exit_2() -> None:
    port = free_port()  # nothing listens there
    result = run("--store", f"http://elastic:s3cret@127.0.0.1:{port}", "store", "check")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"http://elastic:***@127.0.0.1:{port}" in lines[0]
    assert "Connection refused" in lines[0]
    assert "s3cret" not in result.stderr + result.stdout


def test_a_bad_config_value_is_one_line_naming_the_key(tmp_path: Path) -> None:
    result = run("store", "check", env={"CIVICSOC_STORE__RETENTION_DAYS": "forever",
                                        "CIVICSOC_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "store.retention_days (from env CIVICSOC_STORE__RETENTION_DAYS)" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_answers_health_on_the_embedded_store(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen([*CLI, "serve", "--port", str(port)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "CIVICSOC_DATA_DIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    body = json.loads(response.read())
                    break
            except OSError as exc:
                if time.monotonic() > deadline or server.poll() is not None:
                    output = server.stdout.read() if server.stdout else ""
                    raise AssertionError(f"serve did not come up: {output}") from exc
                time.sleep(0.2)
        assert body["status"] == "ok"
        assert body["store"] == f"sqlite:///{tmp_path}/civicsoc.db"
    finally:
        server.terminate()
        server.wait(timeout=10)
