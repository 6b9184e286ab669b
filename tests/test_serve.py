"""``civicsoc serve`` as a newcomer runs it from the README: first start prints an admin token once,
a syslog message sent with ``logger`` lands in the store, an imported EVTX file becomes incidents with
playbooks, all visible over the API; a restart creates no second token; SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_support import EVTX, SIGMA

CIVICSOC = [sys.executable, "-m", "civicsoc"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.port, self.syslog_port = free_port(), free_port()
        # defaults only: no config file (the working directory is a fresh folder), no store override
        self.env = {name: value for name, value in os.environ.items() if not name.startswith("CIVICSOC_")}
        self.env.update({"CIVICSOC_DATA_DIR": str(data_dir), "CIVICSOC_TENANT": "townhall"})
        self.cwd = data_dir.parent
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None

    def start(self, *options: str) -> str:
        self.process = subprocess.Popen(
            [*CIVICSOC, "serve", "--port", str(self.port), "--syslog-port", str(self.syslog_port), *options],
            env=self.env, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.communicate()[1]
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("civicsoc serve did not answer /healthz within 60 s")
        return self.url

    def stop(self) -> tuple[int, str, str]:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        stdout, stderr = self.process.communicate(timeout=60)
        return self.process.returncode, stdout, stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "data")
    yield running
    if running.process is not None and running.process.poll() is None:
        running.process.kill()
        running.process.communicate()


def test_serve_from_first_start_to_an_incident(server: Server, tmp_path: Path) -> None:
    url = server.start()
    assert httpx.get(f"{url}/api/v1/incidents").status_code == 401

    # the README's test event
    assert shutil.which("logger"), "logger (bsdutils) is needed; .ci/run installs it"
    marker = f"civicsoc-readme-check-{os.getpid()}"
    subprocess.run(["logger", "-n", "127.0.0.1", "-P", str(server.syslog_port), "-d", "-t", "sshd",
                    f"Failed password for invalid user {marker} from 10.1.2.3 port 22 ssh2"], check=True)
    # the README's file import, into the same embedded store
    store_url = f"sqlite:///{server.env['CIVICSOC_DATA_DIR']}/civicsoc.db"
    imported = subprocess.run(
        [*CIVICSOC, "--store", store_url, "ingest", "--tenant", "townhall", "--rules", str(SIGMA / "builtin"),
         str(EVTX / "new-user-security.evtx")], env=server.env, cwd=server.cwd, capture_output=True, text=True,
        timeout=300)
    assert imported.returncode == 0, imported.stderr

    returncode, stdout, stderr = server.stop()
    assert returncode == 0, stderr
    token = stdout.strip().splitlines()[0]
    assert token.startswith("cs_") and "first start" in stderr

    url = server.start()
    headers = {"Authorization": f"Bearer {token}"}
    found: list[dict] = []
    for _ in range(50):
        response = httpx.get(f"{url}/api/v1/events", headers=headers,
                             params={"from": "2000-01-01T00:00:00Z", "field": "organization.id:townhall",
                                     "limit": 1000, "order": "desc"})
        found = [e for e in response.json()["items"] if marker in str(e["fields"].get("message", ""))]
        if found:
            break
        time.sleep(0.2)
    assert found, "the logger message never reached the store"
    incidents = httpx.get(f"{url}/api/v1/incidents", headers=headers).json()["items"]
    assert incidents and {i["tenant"] for i in incidents} == {"townhall"}
    with_playbooks = [httpx.get(f"{url}/api/v1/incidents/{i['id']}", headers=headers).json() for i in incidents]
    assert any(detail["playbooks"] for detail in with_playbooks), "no incident got a playbook"
    collectors = httpx.get(f"{url}/api/v1/collectors", headers=headers).json()
    assert [c["name"] for c in collectors] == ["builtin"]
    assert collectors[0]["health"] == "ok"

    returncode, stdout, stderr = server.stop()
    assert returncode == 0 and stdout.strip() == "", "a restart must not print a second token"


def spawned_workers(pid: int) -> list[int]:
    """The uvicorn worker processes of ``pid`` (multiprocessing spawns them with ``spawn_main``)."""
    workers = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # after "pid (comm) state"
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # ended while we looked
        if parent == pid and b"spawn_main" in command:
            workers.append(int(stat.parent.name))
    return workers


def test_serve_with_worker_processes_keeps_one_pipeline_and_stops_them_all(server: Server) -> None:
    url = server.start("--workers", "2")
    assert server.process is not None and server.process.stdout is not None
    token = server.process.stdout.readline().strip()  # the first start prints it before the workers start
    assert token.startswith("cs_")
    deadline = time.monotonic() + 30
    while len(workers := spawned_workers(server.process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(workers) == 2

    # the syslog receiver runs once, in the main process; every worker reads what it stored
    marker = f"civicsoc-workers-check-{os.getpid()}"
    subprocess.run(["logger", "-n", "127.0.0.1", "-P", str(server.syslog_port), "-d", "-t", "sshd",
                    f"Failed password for invalid user {marker} from 10.1.2.3 port 22 ssh2"], check=True)
    headers = {"Authorization": f"Bearer {token}"}
    params = {"from": "2000-01-01T00:00:00Z", "field": "organization.id:townhall", "limit": 1000}
    for _ in range(50):
        answers = [httpx.get(f"{url}/api/v1/events", headers=headers, params=params) for _ in range(8)]
        assert {answer.status_code for answer in answers} == {200}
        if all(marker in answer.text for answer in answers):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the logger message never reached every worker's reads")
    assert httpx.get(f"{url}/api/v1/incidents").status_code == 401  # workers keep auth, of course

    returncode, _, stderr = server.stop()
    assert returncode == 0, stderr
    assert "in 2 worker processes" in stderr
    assert not any(Path(f"/proc/{worker}").exists() for worker in workers)
