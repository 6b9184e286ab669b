"""API benchmark: incident list and incident detail latency under concurrent analysts.

    python -m bench.api [--incidents 100000] [--alerts 1000000] [--tenants 5] [--backend sqlite|elasticsearch|all]
                        [--clients 50] [--duration 20] [--think 0] [--workers 1[,2]] [--keep PATH] [--no-events]
                        [--es-keep PREFIX] [--days 90] [--server-repo DIR] [--gc-freeze]

``--keep`` (SQLite) and ``--es-keep`` (Elasticsearch) seed once and reuse the seed on later runs (a JSON
sidecar beside the file, or ``bench-api-es-<PREFIX>.json`` in the temporary folder, records what was
seeded); a kept SQLite file is migrated by ``setup`` like any store at start. ``--server-repo`` serves
another checkout's app on the same seed, for before/after figures. ``--days`` spreads the incidents over
fewer days: Elasticsearch keeps an event index per tenant and day, and 5 tenants x 90 days (450 shards)
exhaust a 1 GiB heap.

1. Templates: real EVTX attack samples go through the real pipeline once (the tests' rule set,
   ``StreamDetector``: alerts grouped into incidents, playbooks matched) into a scratch store.
2. Seed: the templates are replicated with new ids into the store under test through the bulk
   ``create_many``/``append_events`` paths — incidents spread over 90 days, ~10 alerts each, the events
   behind the alerts (so the detail's timeline search has real work), playbook runs and comments,
   oldest first as ingestion would write them. Statuses follow age (recent ones open, old ones mostly
   resolved); hosts and users are spread over a few hundred names per tenant with a skew. Everything
   comes from a seeded ``random.Random`` per incident, so the expected count of every (tenant, status)
   is known without asking the store.
3. Check: the incident list filtered by status, walked page by page through the API, returns exactly
   the incidents the store counts and the generator made.
4. Load: the real app under uvicorn in a subprocess (real sockets on 127.0.0.1). First a cold start:
   every client's first request at once on fresh tokens. Then, tokens warmed, one client alone (the
   service time without queueing) and ``--clients`` clients (httpx, one event loop) repeating for
   ``--duration`` seconds, with a pause of mean ``--think`` between requests (0: a closed loop, i.e.
   saturation): 60 % a filtered, sorted list followed for 1-3 pages by ``next_cursor``, 40 % an
   incident's detail. Every non-2xx answer is an error, and errors make the exit status 1.
5. Breakdown: the same requests in-process, step by step (store calls vs serialisation), with the
   SQLite query plans or Elasticsearch's own ``took``, to say what dominates.

Figures are printed as tables and as one JSON line. This is a benchmark, not a test: it checks
correctness (step 3 and zero errors), never speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from civicsoc import tokens
from civicsoc.event import Event, format_timestamp
from civicsoc.records import (
    Alert,
    AlertStatus,
    Comment,
    Incident,
    IncidentStatus,
    PlaybookRun,
    Role,
    Severity,
    StepStatus,
)
from civicsoc.store import RecordQuery, Scope, Store

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SIGMA_WINDOWS = SHARED / "sigmahq-sigma" / "rules" / "windows"
# Left out: 3,561 failed logons that the stream grouper turns into 3,739 alerts of one incident, which
# takes it ~3 minutes (each alert counts the alerts of its host so far) and adds nothing a template needs.
SLOW_TEMPLATE_FILES = frozenset({"smb-password-guessing-security.evtx"})
TEMPLATE_EVTX = [path for path in (sorted((SHARED / "deepbluecli-evtx" / "evtx").glob("*.evtx"))
                                   + sorted((SHARED / "evtx-attack-samples").rglob("*.evtx")))
                 if path.name not in SLOW_TEMPLATE_FILES]
SEED_LAYOUT = 2
"""Bumped whenever ``generate`` makes different data, so a ``--keep`` file of an older kind is refused."""
ANALYSTS_PER_TENANT = 8
LIST_SHARE = 0.6
PAGE_SIZE = 50
SORTS = (("created_at", "desc"), ("last_seen", "desc"))
FILTER_KINDS = ("status", "severity", "technique", "host")
COMMENTS = ("Checked with the site admin, expected maintenance.", "Isolated the host, collecting memory image.",
            "User confirmed the login was theirs.", "Escalated to the CISO for a NIS2 decision.",
            "Same pattern as last week, see linked incident.", "Password reset and sessions revoked.")

# What status an incident has by its age: open ones are recent, old ones closed (weights per status).
STATUS_BY_AGE = (
    (2.0, {"new": 45, "acknowledged": 15, "investigating": 20, "contained": 5, "resolved": 8,
           "false_positive": 6, "duplicate": 1}),
    (14.0, {"new": 8, "acknowledged": 7, "investigating": 12, "contained": 6, "resolved": 45,
            "false_positive": 20, "duplicate": 2}),
    (float("inf"), {"new": 1, "acknowledged": 1, "investigating": 2, "contained": 1, "resolved": 65,
                    "false_positive": 27, "duplicate": 3}),
)


def log(message: str) -> None:
    print(message, flush=True)


def peak_rss_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def digest(text: str, size: int = 16) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


# 1. templates: the real pipeline once ----------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """One real incident with its alerts, the events behind them and the playbooks it attracts."""

    incident: Incident
    alerts: tuple[Alert, ...]
    events: dict[str, dict[str, Any]]
    playbooks: tuple[Any, ...]


def real_templates(files: Sequence[Path] = TEMPLATE_EVTX) -> tuple[list[Template], Any]:
    """Run the EVTX files through the real detection pipeline into a scratch SQLite store."""
    from civicsoc.store.sqlite import SqliteStore
    from collectors.base import CollectorContext
    from collectors.evtx import read_evtx
    from detection.rules import builtin_rules_path, load_rules
    from detection.stream import StreamDetector
    from playbooks.loader import load_playbooks
    from playbooks.matching import match_playbooks

    rules = load_rules([builtin_rules_path(), SIGMA_WINDOWS / "builtin" / "security",
                        SIGMA_WINDOWS / "builtin" / "system", SIGMA_WINDOWS / "process_creation"])
    library = load_playbooks()
    events: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as folder:
        scratch = SqliteStore(f"sqlite:///{Path(folder) / 'templates.db'}", synchronous="OFF")
        scratch.setup()
        detector = StreamDetector(rules, scratch)
        for number, path in enumerate(files):
            # A tenant per file: each sample is its own attack, not to be grouped with another file's.
            context = CollectorContext(tenant=f"template-{number}")
            batch = [item.value for item in read_evtx(path, context) if isinstance(item.value, Event)]
            detector(batch)
            events.update((event.id, event.fields) for event in batch)
        everything = Scope.all()
        incidents = [item.record for item in scratch.incidents.list(everything, RecordQuery(limit=5000)).items]
        alerts = [item.record for item in scratch.alerts.list(everything, RecordQuery(limit=5000)).items]
        scratch.close()
    by_incident: dict[str, list[Alert]] = defaultdict(list)
    for alert in alerts:
        by_incident[alert.incident_id or ""].append(alert)
    templates = []
    for incident in incidents:
        own = sorted(by_incident[incident.id], key=lambda a: (a.timestamp, a.id))
        if not own:
            continue
        matched = tuple(m.playbook for m in match_playbooks(library.latest(), incident, tags=incident.tags))
        templates.append(Template(incident, tuple(own),
                                  {e: events[e] for a in own for e in a.event_ids if e in events}, matched))
    if not templates:
        raise SystemExit(f"bench: no incidents from {len(files)} EVTX files; is {SHARED} in place?")
    return templates, library


# 2. seed generation: pure ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedPlan:
    incidents: int
    alerts: int
    tenants: tuple[str, ...]
    now: datetime
    days: int = 90
    hosts_per_tenant: int = 300
    users_per_tenant: int = 400
    events: bool = True
    seed: int = 1
    layout: int = SEED_LAYOUT

    def tenant_of(self, index: int) -> str:
        return self.tenants[index % len(self.tenants)]

    def incident_id(self, index: int) -> str:
        return f"inc-{digest(f'{self.seed}/incident/{index}', 10)}"

    def describe(self) -> dict[str, Any]:
        return {"incidents": self.incidents, "alerts": self.alerts, "tenants": list(self.tenants),
                "now": format_timestamp(self.now), "days": self.days, "hosts_per_tenant": self.hosts_per_tenant,
                "users_per_tenant": self.users_per_tenant, "events": self.events, "seed": self.seed,
                "layout": self.layout}

    @classmethod
    def from_description(cls, data: dict[str, Any]) -> SeedPlan:
        return cls(**{**data, "tenants": tuple(data["tenants"]), "layout": data.get("layout", 1),
                      "now": datetime.fromisoformat(data["now"].replace("Z", "+00:00"))})


def incident_sizes(incidents: int, alerts: int, seed: int) -> list[int]:
    """Alerts per incident: 1 .. 2*mean-1 uniformly, then nudged so the total is exactly ``alerts``."""
    if alerts < incidents:
        raise SystemExit(f"bench: --alerts {alerts} < --incidents {incidents}: every incident needs an alert")
    rng = random.Random(seed)
    mean = alerts / incidents
    top = max(1, round(2 * mean - 1))
    sizes = [rng.randint(1, top) for _ in range(incidents)]
    gap = alerts - sum(sizes)
    while gap:
        index = rng.randrange(incidents)
        if gap > 0:
            sizes[index] += 1
            gap -= 1
        elif sizes[index] > 1:
            sizes[index] -= 1
            gap += 1
    return sizes


@dataclass
class Chunk:
    incidents: list[Incident] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    runs: list[PlaybookRun] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)


def _status_for(age_days: float, rng: random.Random) -> IncidentStatus:
    for limit, weights in STATUS_BY_AGE:
        if age_days < limit:
            return IncidentStatus(rng.choices(list(weights), weights=list(weights.values()))[0])
    raise AssertionError("the last age bucket is unbounded")


def _renamed(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return names.get(value.lower(), value)
    return value


def _copy_event(fields: dict[str, Any], event_id: str, tenant: str, moment: datetime,
                hosts: dict[str, str], users: dict[str, str]) -> Event:
    """A shallow copy with new id, tenant, time, host and user: nested dicts are shared with the
    template except the ones changed (a deep copy of a million events would dominate seeding)."""
    doc = dict(fields)
    doc["@timestamp"] = format_timestamp(moment)
    doc["event"] = {**fields.get("event", {}), "id": event_id}
    doc["organization"] = {**fields.get("organization", {}), "id": tenant}
    if isinstance(fields.get("host"), dict) and "name" in fields["host"]:
        doc["host"] = {**fields["host"], "name": _renamed(fields["host"]["name"], hosts)}
    if isinstance(fields.get("user"), dict) and "name" in fields["user"]:
        doc["user"] = {**fields["user"], "name": _renamed(fields["user"]["name"], users)}
    return Event(event_id, tenant, moment, doc)


def generate(plan: SeedPlan, templates: Sequence[Template], sizes: Sequence[int], indices: range) -> Chunk:
    """The incidents ``indices`` of the plan, with their alerts, events, playbook runs and comments."""
    chunk = Chunk()
    for index in indices:
        rng = random.Random(f"{plan.seed}/{index}")
        tenant = plan.tenant_of(index)
        template = templates[rng.randrange(len(templates))]
        incident_id = plan.incident_id(index)
        size = sizes[index]
        # Skewed towards low numbers, as a few servers raise most incidents.
        host_no = int(plan.hosts_per_tenant * rng.random() ** 2)
        user_no = int(plan.users_per_tenant * rng.random() ** 2)
        template_hosts = {h for a in template.alerts for h in a.hosts} | set(template.incident.hosts)
        template_users = {u for a in template.alerts for u in a.users} | set(template.incident.users)
        hosts = {h.lower(): f"{h}-{host_no:03d}" for h in template_hosts}
        users = {u.lower(): f"{u}-{user_no:03d}" for u in template_users}

        # Oldest first, as they were raised: a chunk's events land in a few daily indices, as ingestion's
        # do (scattered over all of them, Elasticsearch indexes into hundreds of shards at once).
        age = plan.days * (1 - (index + rng.random()) / plan.incidents)
        span = 0.0 if size == 1 else min(rng.expovariate(1 / 1800), 6 * 3600)
        first_seen = plan.now - timedelta(days=age, seconds=span + 300)
        offsets = sorted([0.0, span, *(rng.uniform(0, span) for _ in range(max(0, size - 2)))])[:size]
        status = _status_for(age, rng)
        if status == IncidentStatus.duplicate and index < len(plan.tenants):
            status = IncidentStatus.resolved  # nothing earlier of its tenant to duplicate
        alert_status = {IncidentStatus.new: AlertStatus.new,
                        IncidentStatus.false_positive: AlertStatus.false_positive}.get(status, AlertStatus.acknowledged)

        alerts: list[Alert] = []
        event_ids: dict[tuple[int, str], str] = {}
        for position in range(size):
            cycle, source = divmod(position, len(template.alerts))
            model = template.alerts[source]
            alert_id = f"al-{digest(f'{incident_id}/{position}')}"
            moment = first_seen + timedelta(seconds=offsets[position])
            new_event_ids = []
            for n, template_event in enumerate(model.event_ids):
                key = (cycle, template_event)
                if key not in event_ids:
                    event_ids[key] = digest(f"{alert_id}/{n}")
                    if plan.events and template_event in template.events:
                        chunk.events.append(_copy_event(template.events[template_event], event_ids[key], tenant,
                                                        moment + timedelta(seconds=n), hosts, users))
                new_event_ids.append(event_ids[key])
            alert_fields = dict(model.fields)
            if "host.name" in alert_fields:
                alert_fields["host.name"] = _renamed(alert_fields["host.name"], hosts)
            if "user.name" in alert_fields:
                alert_fields["user.name"] = _renamed(alert_fields["user.name"], users)
            created = moment + timedelta(seconds=rng.uniform(1, 30))
            alerts.append(model.model_copy(update={
                "id": alert_id, "tenant": tenant, "event_ids": new_event_ids,
                "hosts": [hosts[h.lower()] for h in model.hosts], "users": [users[u.lower()] for u in model.users],
                "fields": alert_fields, "status": alert_status, "incident_id": incident_id, "timestamp": moment,
                "created_at": created, "updated_at": created,
            }))

        created_at = alerts[0].created_at
        last_seen = alerts[-1].timestamp
        worst = max((a.severity for a in alerts), key=lambda s: s.rank)
        times: dict[str, Any] = {}
        if status != IncidentStatus.new:
            times["acknowledged_at"] = created_at + timedelta(minutes=rng.uniform(5, 240))
        if status in (IncidentStatus.contained, IncidentStatus.resolved):
            times["contained_at"] = times["acknowledged_at"] + timedelta(hours=rng.uniform(0.5, 24))
        if status in (IncidentStatus.resolved, IncidentStatus.false_positive, IncidentStatus.duplicate):
            times["resolved_at"] = times.get("contained_at", times["acknowledged_at"]) + timedelta(
                hours=rng.uniform(0.2, 72))
        times = {name: min(moment, plan.now) for name, moment in times.items()}
        significant = (worst.rank >= Severity.high.rank and status not in (IncidentStatus.false_positive,
                                                                            IncidentStatus.duplicate)
                       and "acknowledged_at" in times and rng.random() < 0.05)
        title = template.incident.title
        for old, new in hosts.items():
            title = title.replace(old, new) if old in title else title
        incident = template.incident.model_copy(update={
            "id": incident_id, "tenant": tenant, "title": title, "status": status, "severity": worst,
            "assignee": None if status == IncidentStatus.new else f"analyst{rng.randrange(ANALYSTS_PER_TENANT) + 1}",
            "alert_ids": [a.id for a in alerts],
            "rule_ids": sorted({a.rule_id for a in alerts}),
            "techniques": sorted({t for a in alerts for t in a.techniques}),
            "tactics": sorted({t for a in alerts for t in a.tactics}),
            "hosts": sorted({h for a in alerts for h in a.hosts}),
            "users": sorted({u for a in alerts for u in a.users}),
            "tags": sorted({t for a in alerts for t in a.tags}),
            "duplicate_of": plan.incident_id(index - len(plan.tenants)) if status == IncidentStatus.duplicate
            else None,
            "first_seen": first_seen, "last_seen": last_seen, "created_at": created_at,
            "updated_at": max([created_at, *times.values()]),
            "acknowledged_at": times.get("acknowledged_at"), "contained_at": times.get("contained_at"),
            "resolved_at": times.get("resolved_at"),
            "significant_at": times["acknowledged_at"] if significant else None,
            "nis2": significant and rng.random() < 0.5, "gdpr": significant and rng.random() < 0.3,
        })
        chunk.incidents.append(incident)
        chunk.alerts.extend(alerts)
        chunk.statuses[(tenant, status.value)] += 1

        done = {IncidentStatus.new: 0.0, IncidentStatus.acknowledged: 0.2, IncidentStatus.investigating: 0.5,
                IncidentStatus.contained: 0.8}.get(status, 1.0)
        for playbook in template.playbooks:
            steps = {}
            for number, step in enumerate(playbook.steps):
                finished = number < done * len(playbook.steps)
                steps[step.id] = {"status": (StepStatus.done if finished else StepStatus.todo).value, "note": "",
                                  "by": incident.assignee if finished else None,
                                  "at": format_timestamp(incident.updated_at) if finished else None}
            chunk.runs.append(PlaybookRun(
                id=PlaybookRun.id_for(incident_id, playbook.id), tenant=tenant, incident_id=incident_id,
                playbook_id=playbook.id, playbook_version=playbook.version, attached_by="civicsoc",
                attached_at=created_at, steps=steps))
        if status != IncidentStatus.new and rng.random() < 0.3:
            for number in range(rng.randint(1, 3)):
                at = times["acknowledged_at"] + timedelta(minutes=10 * number + 1)
                chunk.comments.append(Comment(
                    id=f"{incident_id}.{at:%Y%m%dT%H%M%S%f}.{number}", tenant=tenant, incident_id=incident_id,
                    author=f"analyst{rng.randrange(ANALYSTS_PER_TENANT) + 1}", text=rng.choice(COMMENTS),
                    created_at=at))
    return chunk


# seeding: I/O --------------------------------------------------------------------------------------


@dataclass
class SeedResult:
    statuses: Counter[tuple[str, str]]
    counts: Counter[str]
    seconds: float


def _write(store: Store, chunk: Chunk) -> Counter[str]:
    everything = Scope.all()
    written: Counter[str] = Counter()
    written["incidents"] += store.incidents.create_many(everything, chunk.incidents)
    written["alerts"] += store.alerts.create_many(everything, chunk.alerts)
    if chunk.runs:
        written["playbook_runs"] += store.records(PlaybookRun).create_many(everything, chunk.runs)
    if chunk.comments:
        written["comments"] += store.records(Comment).create_many(everything, chunk.comments)
    for start in range(0, len(chunk.events), 2000):
        batch = chunk.events[start:start + 2000]
        for attempt in range(10):
            result = store.append_events(batch)
            written["events"] += result.stored
            if result.rejected:
                raise SystemExit(f"bench: {len(result.rejected)} events rejected: {result.rejected[:1]}")
            if not result.retry:
                break
            retry = set(result.retry)
            batch = [event for event in batch if event.id in retry]
            time.sleep(0.5 * (attempt + 1))  # the node's write queue is full: back off
        else:
            raise SystemExit(f"bench: {len(batch)} events still refused after 10 tries")
    return written


def seed(store: Store, plan: SeedPlan, templates: Sequence[Template], *, writers: int,
         chunk_size: int = 1000) -> SeedResult:
    """Generate in this thread while ``writers`` threads write the previous chunks (I/O releases the GIL)."""
    sizes = incident_sizes(plan.incidents, plan.alerts, plan.seed)
    statuses: Counter[tuple[str, str]] = Counter()
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    reported = started
    pending: list[Future[Counter[str]]] = []
    with ThreadPoolExecutor(max_workers=writers) as pool:
        for start in range(0, plan.incidents, chunk_size):
            chunk = generate(plan, templates, sizes, range(start, min(plan.incidents, start + chunk_size)))
            statuses.update(chunk.statuses)
            pending.append(pool.submit(_write, store, chunk))
            while len(pending) > writers:
                counts.update(pending.pop(0).result())
            if time.perf_counter() - reported > 30:
                reported = time.perf_counter()
                log(f"  seeded {counts['incidents']:,} incidents, {counts['alerts']:,} alerts, "
                    f"{counts['events']:,} events in {reported - started:.0f} s")
        for future in pending:
            counts.update(future.result())
    store.refresh()
    return SeedResult(statuses, counts, time.perf_counter() - started)


@dataclass
class Seeded:
    plan: SeedPlan
    statuses: Counter[tuple[str, str]]
    counts: dict[str, int]
    seconds: float | None
    """None: reused from ``--keep``."""


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def seed_sqlite(path: Path, plan: SeedPlan, templates: Callable[[], list[Template]]) -> Seeded:
    from civicsoc.store.sqlite import SqliteStore

    info = sidecar(path)
    if path.exists() and info.exists():
        kept = json.loads(info.read_text())
        kept_plan = SeedPlan.from_description(kept["plan"])
        if (kept_plan.incidents, kept_plan.alerts, kept_plan.tenants, kept_plan.events, kept_plan.layout,
                kept_plan.days) != (plan.incidents, plan.alerts, plan.tenants, plan.events, plan.layout, plan.days):
            raise SystemExit(f"bench: {path} holds another seed ({kept['plan']}); delete it or pass another --keep")
        log(f"sqlite: reusing {path} ({path.stat().st_size / 2**20:,.0f} MiB), seeded {kept['plan']['now']}")
        statuses = Counter({tuple(key.split("|")): n for key, n in kept["statuses"].items()})
        return Seeded(kept_plan, statuses, kept["counts"], None)
    if path.exists():
        raise SystemExit(f"bench: {path} exists but has no {info.name}: not a seed of this benchmark")
    # synchronous=OFF while seeding only: a crash here just means seeding again; the server uses the default.
    store = SqliteStore(f"sqlite:///{path.resolve()}", synchronous="OFF")
    store.setup()
    result = seed(store, plan, templates(), writers=1)
    store.close()
    info.write_text(json.dumps({"plan": plan.describe(), "counts": result.counts,
                                "statuses": {"|".join(key): n for key, n in result.statuses.items()}}))
    return Seeded(plan, result.statuses, dict(result.counts), result.seconds)


def seed_elasticsearch(url: str, prefix: str, plan: SeedPlan, templates: list[Template]) -> Seeded:
    from civicsoc.store.elasticsearch import ElasticsearchStore

    # No refresh per bulk while seeding (one at the end); the server's store refreshes as configured.
    store = ElasticsearchStore(url, prefix=prefix, refresh_records=False, request_timeout=120)
    store.setup()
    try:
        result = seed(store, plan, templates, writers=2)
    finally:
        store.close()
    return Seeded(plan, result.statuses, dict(result.counts), result.seconds)


def issue_tokens(store: Store, tenants: Sequence[str]) -> dict[str, str]:
    secrets = {}
    for tenant in tenants:
        tokens.ensure_tenant(store, tenant, "bench", name=f"Bench {tenant}")
        issued = tokens.create_token(store, tenant=tenant, role=Role.analyst, name=f"bench-{uuid.uuid4().hex[:6]}",
                                     actor="bench")
        secrets[tenant] = issued.secret
    return secrets


# 3. the server ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        pids.extend(process_tree(int(child)))
    return pids


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def peak_rss_of(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) // 1024
    return total


def frozen_app() -> Any:
    """``bench.api_server.build_app``, then ``api.app.freeze_long_lived_objects()`` as ``civicsoc serve``
    does: what ``--gc-freeze`` serves."""
    from api.app import freeze_long_lived_objects
    from bench.api_server import build_app

    app = build_app()
    freeze_long_lived_objects()
    return app


@contextlib.contextmanager
def serve(store_url: str, prefix: str | None, workers: int, repo: Path = REPO,
          factory: str = "bench.api_server:build_app") -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The app of the checkout ``repo`` (built by ``factory``) under uvicorn, until the block ends."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(repo), "CIVICSOC_BENCH_STORE": store_url,
           "CIVICSOC_BENCH_PREFIX": prefix or ""}
    command = [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    with tempfile.TemporaryFile() as output:
        server = subprocess.Popen(command, cwd=repo, env=env, stdout=output, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while True:
                if server.poll() is not None:
                    output.seek(0)
                    raise SystemExit(f"bench: the server exited ({server.returncode}):\n"
                                     f"{output.read().decode(errors='replace')[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit("bench: the server did not answer /healthz within 180 s")
                time.sleep(0.3)
            if workers > 1:  # every worker must be up, or the first seconds measure imports
                while len(process_tree(server.pid)) < workers + 1:
                    time.sleep(0.2)
                time.sleep(3)
            yield base, server
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


# correctness before timing ---------------------------------------------------------------------------


def walk_list(base: str, secret: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {secret}"}
    cursor = None
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        while True:
            response = client.get("/api/v1/incidents", params={**params, **({"cursor": cursor} if cursor else {})})
            if response.status_code != 200:
                raise SystemExit(f"bench: list {params} answered {response.status_code}: {response.text[:500]}")
            page = response.json()
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return items


def verify_lists(base: str, store: Store, seeded: Seeded, secrets: dict[str, str]) -> dict[str, Any]:
    """The list walked through the API equals what the store counts and what the generator made."""
    tenant = seeded.plan.tenants[0]
    report = {}
    for status, sort in (("new", "created_at"), ("investigating", "last_seen")):
        started = time.perf_counter()
        items = walk_list(base, secrets[tenant], {"status": status, "sort": sort, "order": "desc", "limit": 500})
        walked = time.perf_counter() - started
        counted = store.incidents.count(Scope.of(tenant), RecordQuery.where({"status": [status]}))
        expected = seeded.statuses[(tenant, status)]
        ids = [item["id"] for item in items]
        keys = [item[sort] for item in items]
        problems = []
        if len(ids) != len(set(ids)):
            problems.append(f"{len(ids) - len(set(ids))} incidents listed twice")
        if any(item["status"] != status or item["tenant"] != tenant for item in items):
            problems.append("an incident of another status or tenant")
        if keys != sorted(keys, reverse=True):
            problems.append(f"not in descending {sort} order")
        if not len(ids) == counted == expected:
            problems.append(f"walked {len(ids)}, store counts {counted}, generator made {expected}")
        if problems:
            raise SystemExit(f"bench: list {tenant} status={status} sort={sort}: {'; '.join(problems)}")
        report[status] = {"incidents": len(ids), "walk_s": round(walked, 2)}
        log(f"  check {tenant} status={status} sort={sort} desc: walked {len(ids)} = store count {counted} "
            f"= generated {expected}, ordered, no duplicates ({walked:.2f} s)")
    return report


# 4. load ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    kind: str
    """``list`` (first page), ``list_next`` (a page by cursor), ``detail``."""
    filter: str
    client_ms: float
    server_ms: float | None


@dataclass
class LoadResult:
    samples: list[Sample]
    errors: list[str]
    seconds: float
    client_cpu_s: float
    server_cpu_s: float
    store_cpu_s: float | None = None
    """CPU seconds of the Elasticsearch node meanwhile (it shares the machine's cores); None for SQLite."""


@dataclass(frozen=True)
class Workload:
    """What the clients ask for: per tenant, incident ids for details and values for the list filters."""

    tenants: tuple[str, ...]
    secrets: dict[str, str]
    ids: dict[str, list[str]]
    techniques: list[str]
    hosts: list[str]
    hosts_per_tenant: int

    @classmethod
    def of(cls, seeded: Seeded, templates_hosts: list[str], techniques: list[str], secrets: dict[str, str]) -> Workload:
        plan = seeded.plan
        ids: dict[str, list[str]] = defaultdict(list)
        for index in range(plan.incidents):
            ids[plan.tenant_of(index)].append(plan.incident_id(index))
        return cls(plan.tenants, secrets, dict(ids), techniques, templates_hosts, plan.hosts_per_tenant)

    def list_params(self, rng: random.Random) -> tuple[str, dict[str, Any]]:
        kind = rng.choice(FILTER_KINDS)
        sort, order = rng.choice(SORTS)
        params: dict[str, Any] = {"sort": sort, "order": order, "limit": PAGE_SIZE}
        if kind == "status":
            params["status"] = rng.choice([["new"], ["investigating"], ["new", "investigating"]])
        elif kind == "severity":
            params["severity"] = rng.choice([["high"], ["critical"], ["high", "critical"]])
        elif kind == "technique":
            params["technique"] = rng.choice(self.techniques)
        else:
            params["host"] = f"{rng.choice(self.hosts)}-{int(self.hosts_per_tenant * rng.random() ** 2):03d}"
        return kind, params


async def _client(number: int, http: httpx.AsyncClient, workload: Workload, deadline: float, warm_until: float,
                  think: float, samples: list[Sample], errors: list[str]) -> None:
    rng = random.Random(number)
    tenant = workload.tenants[number % len(workload.tenants)]
    headers = {"Authorization": f"Bearer {workload.secrets[tenant]}"}
    ids = workload.ids[tenant]

    async def get(kind: str, what: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            response = await http.get(path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            errors.append(f"{kind} {path}: {type(exc).__name__}: {exc}")
            return None
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code // 100 != 2:
            errors.append(f"{kind} {path} {params}: HTTP {response.status_code} {response.text[:200]}")
            return None
        timing = response.headers.get("server-timing", "")
        server_ms = float(timing.split("dur=")[1]) if "dur=" in timing else None
        if started >= warm_until:
            samples.append(Sample(kind, what, elapsed, server_ms))
        return response.json()

    while time.perf_counter() < deadline:
        if rng.random() < LIST_SHARE:
            what, params = workload.list_params(rng)
            page = await get("list", what, "/api/v1/incidents", params)
            for _ in range(rng.randint(1, 3) - 1):
                if page is None or page["next_cursor"] is None or time.perf_counter() >= deadline:
                    break
                page = await get("list_next", what, "/api/v1/incidents", {**params, "cursor": page["next_cursor"]})
        else:
            await get("detail", "-", f"/api/v1/incidents/{rng.choice(ids)}")
        if think:
            await asyncio.sleep(rng.uniform(0, 2 * think))


async def _load(base: str, workload: Workload, clients: int, duration: float, warmup: float,
                think: float) -> tuple[list[Sample], list[str], float]:
    samples: list[Sample] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as http:
        start = time.perf_counter()
        warm_until = start + warmup
        deadline = warm_until + duration
        await asyncio.gather(*(_client(n, http, workload, deadline, warm_until, think, samples, errors)
                               for n in range(clients)))
        # Requests in flight at the deadline finish after it: measure up to the last one.
        return samples, errors, time.perf_counter() - warm_until


def store_cpu_seconds(store: Store) -> float | None:
    """CPU seconds the Elasticsearch node has used so far (node stats); None for an in-process store."""
    client = getattr(store, "client", None)
    if client is None:
        return None
    nodes = client.nodes.stats(metric="process")["nodes"].values()
    return sum(node["process"]["cpu"]["total_in_millis"] for node in nodes) / 1000


def run_load(base: str, server_pids: Sequence[int], workload: Workload, *, clients: int, duration: float,
             warmup: float, think: float, store: Store | None = None) -> LoadResult:
    # The load generator's own full collections (templates, workload: hundreds of thousands of objects)
    # would stall every client at once and show up as server latency: leave what exists now out of them.
    gc.collect()
    gc.freeze()
    client_cpu = time.process_time()
    server_cpu = cpu_seconds(server_pids)
    store_cpu = store_cpu_seconds(store) if store is not None else None
    try:
        samples, errors, seconds = asyncio.run(_load(base, workload, clients, duration, warmup, think))
    finally:
        gc.unfreeze()
    store_used = None if store is None or store_cpu is None else store_cpu_seconds(store) - store_cpu
    return LoadResult(samples, errors, seconds, time.process_time() - client_cpu,
                      cpu_seconds(server_pids) - server_cpu, store_used)


async def _burst(base: str, workload: Workload, clients: int) -> list[float]:
    async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=clients), timeout=300) as http:
        async def one(number: int) -> float:
            tenant = workload.tenants[number % len(workload.tenants)]
            ids = workload.ids[tenant]
            started = time.perf_counter()
            response = await http.get(f"/api/v1/incidents/{ids[number % len(ids)]}",
                                      headers={"Authorization": f"Bearer {workload.secrets[tenant]}"})
            response.raise_for_status()
            return (time.perf_counter() - started) * 1000

        return list(await asyncio.gather(*(one(n) for n in range(clients))))


def cold_start(base: str, workload: Workload, clients: int) -> dict[str, float]:
    """Every client's first request at once, as after a restart: each token is verified (argon2) before
    the server remembers it, and nothing stops all first requests of a token from verifying it at once."""
    latencies = sorted(asyncio.run(_burst(base, workload, clients)))
    return {"requests": clients, "p50_ms": round(statistics.median(latencies)), "max_ms": round(latencies[-1])}


def warm_tokens(base: str, workload: Workload, workers: int) -> None:
    """One request after another per token, a few per worker, so every worker has verified every token."""
    for tenant in workload.tenants:
        headers = {"Authorization": f"Bearer {workload.secrets[tenant]}"}
        for _ in range(3 * workers):
            httpx.get(f"{base}/api/v1/incidents", params={"limit": 1}, headers=headers, timeout=60).raise_for_status()


def percentiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    if len(ordered) < 2:
        only = round(ordered[0], 1) if ordered else float("nan")
        return {"p50": only, "p95": only, "p99": only, "max": only}
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p95": round(cuts[94], 1), "p99": round(cuts[98], 1),
            "max": round(ordered[-1], 1)}


def summarize(result: LoadResult) -> dict[str, Any]:
    by_kind: dict[str, list[Sample]] = defaultdict(list)
    for sample in result.samples:
        by_kind[sample.kind].append(sample)
        if sample.kind == "list":
            by_kind[f"list[{sample.filter}]"].append(sample)
    by_kind["all"] = result.samples
    summary: dict[str, Any] = {}
    for kind, samples in sorted(by_kind.items()):
        server = [s.server_ms for s in samples if s.server_ms is not None]
        summary[kind] = {"n": len(samples), "rps": round(len(samples) / result.seconds, 1),
                         **percentiles([s.client_ms for s in samples]),
                         "server_p50": percentiles(server)["p50"], "server_p99": percentiles(server)["p99"]}
    cpu = {"client_cpu_s": round(result.client_cpu_s, 1), "server_cpu_s": round(result.server_cpu_s, 1)}
    if result.store_cpu_s is not None:  # includes the warm-up seconds, like the other two
        cpu["store_cpu_s"] = round(result.store_cpu_s, 1)
    return {"requests": summary, "errors": len(result.errors), "seconds": round(result.seconds, 1), **cpu}


def print_summary(title: str, figures: dict[str, Any]) -> None:
    store = f", Elasticsearch {figures['store_cpu_s']} s" if "store_cpu_s" in figures else ""
    log(f"\n{title}: {figures['seconds']} s, {figures['errors']} errors, CPU: server {figures['server_cpu_s']} s, "
        f"load generator {figures['client_cpu_s']} s{store}")
    log(f"  {'request':20} {'n':>6} {'req/s':>7} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}   "
        f"{'srv p50':>7} {'srv p99':>7}  (ms)")
    for kind, row in figures["requests"].items():
        log(f"  {kind:20} {row['n']:6} {row['rps']:7} {row['p50']:7} {row['p95']:7} {row['p99']:7} {row['max']:7}   "
            f"{row['server_p50']:7} {row['server_p99']:7}")


# 5. what dominates: the same requests in-process, step by step -------------------------------------------


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2) if samples else float("nan")


class QueryLog:
    """SQL statements (bound values written in, as SQLite expands them) or Elasticsearch ``took`` values
    seen while a step runs."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.statements: list[str] = []
        self.took: list[int] = []

    @contextlib.contextmanager
    def capture(self) -> Iterator[QueryLog]:
        self.statements.clear()
        self.took.clear()
        if hasattr(self.store, "connection"):
            conn = self.store.connection()  # type: ignore[attr-defined]
            conn.set_trace_callback(self.statements.append)
            try:
                yield self
            finally:
                conn.set_trace_callback(None)
            return
        client = self.store.client  # type: ignore[attr-defined]
        originals = {name: getattr(client, name) for name in ("search", "msearch")}

        def timed(original: Callable[..., Any]) -> Callable[..., Any]:
            def call(**kwargs: Any) -> Any:
                response = original(**kwargs)
                self.took.append(response["took"])  # a multi-search's took covers all its searches
                return response
            return call

        for name, original in originals.items():
            setattr(client, name, timed(original))
        try:
            yield self
        finally:
            for name, original in originals.items():
                setattr(client, name, original)


def breakdown(store: Store, workload: Workload, samples: int = 60) -> dict[str, Any]:
    """Median time of each step of the two routes, called in-process as the routes call them."""
    from api.schemas import EventOut, IncidentDetailOut, Page, incident_out
    from civicsoc import triage
    from civicsoc.records import Comment, PlaybookRun, Submission
    from civicsoc.tenancy import regime_of, tenant_of, tenant_read
    from playbooks.loader import load_playbooks
    from playbooks.service import describe_progress

    library = load_playbooks()
    rng = random.Random(7)
    tenant = workload.tenants[0]
    scope = Scope.of(tenant)
    queries = QueryLog(store)
    steps: dict[str, list[float]] = defaultdict(list)
    took: dict[str, list[int]] = defaultdict(list)
    plans: dict[str, str] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        with queries.capture():
            started = time.perf_counter()
            result = fn()
            steps[name].append(time.perf_counter() - started)
        took[name].extend(queries.took)
        if queries.statements and name not in plans:
            plans[name] = queries.statements[-1]
        return result

    def detail(incident_id: str) -> None:
        # The steps of ``api.routes.incidents.get_incident`` and ``triage.incident_detail``, one by one.
        current = timed("detail: incidents.get", lambda: store.incidents.get(scope, incident_id))
        alerts = timed("detail: alerts (get_many)", lambda: triage.incident_alerts(store, scope, current.record))
        reads = [*triage.timeline_reads(alerts), triage.of_incident(Comment, incident_id),
                 triage.of_incident(Submission, incident_id), triage.of_incident(PlaybookRun, incident_id),
                 tenant_read(current.record.tenant)]
        *events, comments, submissions, runs, tenant = timed(
            "detail: the rest (read_together)", lambda: store.read_together(scope, reads))
        playbooks, deadlines = timed("detail: playbooks+deadlines", lambda: describe_progress(
            library, current.record, runs.items, regime_of(tenant_of(tenant)), datetime.now(UTC),
            [item.record for item in submissions.items]))
        timed("detail: serialise (pydantic)", lambda: IncidentDetailOut(
            incident=incident_out(current), alerts=alerts,
            timeline=[EventOut(id=e.id, tenant=e.tenant, timestamp=e.timestamp, fields=e.fields)
                      for e in triage.timeline_of(events)],
            comments=[item.record for item in comments.items], playbooks=playbooks,
            deadlines=[d.as_dict() for d in deadlines]).model_dump_json())

    for _ in range(samples):
        detail(rng.choice(workload.ids[tenant]))
    for kind in FILTER_KINDS:
        for _ in range(max(10, samples // 4)):
            while True:
                what, params = workload.list_params(rng)
                if what == kind:
                    break
            filters = {"status": params.get("status"), "severity": params.get("severity"),
                       "techniques": params.get("technique"), "hosts": params.get("host")}
            query = RecordQuery.where({k: v for k, v in filters.items() if v}, sort=params["sort"],
                                      descending=True, limit=PAGE_SIZE)
            page = timed(f"list[{kind}]: store", lambda query=query: store.incidents.list(scope, query))
            timed(f"list[{kind}]: serialise", lambda page=page: Page(
                items=[incident_out(item) for item in page.items], next_cursor=page.next_cursor).model_dump_json())
    figures: dict[str, Any] = {name: {"median_ms": _median_ms(values),
                                      "p95_ms": round(sorted(values)[int(len(values) * 0.95) - 1] * 1000, 2)}
                               for name, values in steps.items()}
    for name, values in took.items():
        if values:
            figures[name]["es_took_median_ms"] = statistics.median(values)
    if plans and hasattr(store, "connection"):
        conn = store.connection()  # type: ignore[attr-defined]
        for name, sql in plans.items():
            if sql.lstrip().upper().startswith("SELECT"):
                rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
                figures[name]["plan"] = " | ".join(row[-1] for row in rows)
    return figures


def print_breakdown(figures: dict[str, Any]) -> None:
    log(f"  {'step (in-process, one thread)':34} {'median':>8} {'p95':>8} {'es took':>8}  (ms)")
    for name, row in figures.items():
        log(f"  {name:34} {row['median_ms']:8} {row['p95_ms']:8} {row.get('es_took_median_ms', ''):>8}")
        if "plan" in row:
            log(f"      plan: {row['plan']}")


# main -----------------------------------------------------------------------------------------------


def measure(label: str, store_url: str, prefix: str | None, store: Store, seeded: Seeded, workload: Workload,
            args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for workers in args.workers:
        factory = "bench.api:frozen_app" if args.gc_freeze else "bench.api_server:build_app"
        with serve(store_url, prefix, workers, args.server_repo or REPO, factory) as (base, server):
            pids = process_tree(server.pid)
            run: dict[str, Any] = {"cold_start": cold_start(base, workload, args.clients)}
            log(f"\n{label}, workers={workers}: cold start, {args.clients} first requests at once: "
                f"p50 {run['cold_start']['p50_ms']} ms, max {run['cold_start']['max_ms']} ms")
            if "check" not in figures:
                figures["check"] = verify_lists(base, store, seeded, workload.secrets)
            warm_tokens(base, workload, workers)
            single = run_load(base, pids, workload, clients=1, duration=args.single_duration, warmup=1, think=0,
                              store=store)
            run["1_client"] = summarize(single)
            print_summary(f"{label}, workers={workers}, 1 client", run["1_client"])
            loaded = run_load(base, pids, workload, clients=args.clients, duration=args.duration,
                              warmup=args.warmup, think=args.think, store=store)
            run[f"{args.clients}_clients"] = summarize(loaded)
            run["server_peak_rss_mib"] = peak_rss_of(pids)
            think = f", think {args.think * 1000:.0f} ms" if args.think else ""
            print_summary(f"{label}, workers={workers}, {args.clients} clients{think}", run[f"{args.clients}_clients"])
            log(f"  server peak RSS {run['server_peak_rss_mib']} MiB")
            figures["errors"] = figures.get("errors", 0) + len(single.errors) + len(loaded.errors)
            for error in (single.errors + loaded.errors)[:5]:
                log(f"  error: {error}")
            figures[f"workers_{workers}"] = run
    if args.breakdown:
        log(f"\n{label}: in-process breakdown (tenant {seeded.plan.tenants[0]})")
        figures["breakdown"] = breakdown(store, workload)
        print_breakdown(figures["breakdown"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--no-events", dest="events", action="store_false",
                        help="seed no events (the detail's timeline then finds nothing)")
    parser.add_argument("--backend", choices=["sqlite", "elasticsearch", "all"], default="all")
    parser.add_argument("--es-url", default="http://127.0.0.1:9200")
    parser.add_argument("--keep", type=Path, help="SQLite file to seed once and reuse on later runs")
    parser.add_argument("--days", type=int, default=90,
                        help="days the incidents spread over (Elasticsearch keeps one event index per tenant and day)")
    parser.add_argument("--server-repo", type=Path, metavar="DIR",
                        help="serve the app of another checkout (e.g. `git archive HEAD | tar -x -C DIR`) to compare "
                             "code versions on one seed; seeding, checks and load stay this checkout's")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() in each server process once the app is built (see frozen_app)")
    parser.add_argument("--es-keep", metavar="PREFIX",
                        help="Elasticsearch index prefix to seed once, reuse on later runs and leave in place")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of the timed run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before timing starts")
    parser.add_argument("--single-duration", type=float, default=8.0, help="seconds of the one-client run")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean pause of a client between requests in seconds (0: closed loop, saturation)")
    parser.add_argument("--workers", type=lambda text: [int(n) for n in text.split(",")], default=[1],
                        help="uvicorn worker processes, e.g. 1 or 1,2")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false")
    args = parser.parse_args()

    log(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    tenants = tuple(f"agency-{chr(ord('a') + n)}" for n in range(args.tenants))
    plan = SeedPlan(args.incidents, args.alerts, tenants, datetime.now(UTC).replace(microsecond=0),
                    days=args.days, events=args.events)
    cache: dict[str, Any] = {}

    def templates() -> list[Template]:
        if "templates" not in cache:
            started = time.perf_counter()
            cache["templates"], _ = real_templates(TEMPLATE_EVTX)
            found = cache["templates"]
            log(f"templates: {len(found)} real incidents, {sum(len(t.alerts) for t in found)} alerts from "
                f"{len(TEMPLATE_EVTX)} EVTX files in {time.perf_counter() - started:.1f} s")
        return cache["templates"]

    results: dict[str, Any] = {"plan": {k: v for k, v in plan.describe().items() if k != "now"},
                               "clients": args.clients, "duration_s": args.duration, "think_s": args.think,
                               "load_average_start": round(os.getloadavg()[0], 1)}
    if args.backend in ("sqlite", "all"):
        results["sqlite"] = run_sqlite(args, plan, templates)
    if args.backend in ("elasticsearch", "all"):
        results["elasticsearch"] = run_elasticsearch(args, plan, templates)
    results["errors"] = sum(results[backend].get("errors", 0) for backend in ("sqlite", "elasticsearch")
                            if backend in results)
    results["load_average_end"] = round(os.getloadavg()[0], 1)
    results["bench_peak_rss_mib"] = peak_rss_mib()
    log("\n" + json.dumps(results))
    if results["errors"]:
        raise SystemExit(f"bench: {results['errors']} requests failed (see the errors above)")


def _workload(seeded: Seeded, templates: Callable[[], list[Template]], secrets: dict[str, str]) -> Workload:
    found = templates()
    weights = Counter(t for template in found for t in template.incident.techniques)
    techniques = [t for t, _ in weights.most_common()]
    hosts = sorted({h for template in found for h in template.incident.hosts})
    return Workload.of(seeded, hosts, techniques, secrets)


def _seed_figures(seeded: Seeded) -> dict[str, Any]:
    figures: dict[str, Any] = {"counts": seeded.counts}
    if seeded.seconds is not None:
        records = sum(seeded.counts.values())
        figures.update(seconds=round(seeded.seconds, 1), records_per_s=round(records / seeded.seconds))
        log(f"  seeded {', '.join(f'{n:,} {k}' for k, n in seeded.counts.items())} in {seeded.seconds:.0f} s "
            f"= {records / seeded.seconds:,.0f} records/s (peak RSS {peak_rss_mib()} MiB)")
    return figures


def run_sqlite(args: argparse.Namespace, plan: SeedPlan, templates: Callable[[], list[Template]]) -> dict[str, Any]:
    from civicsoc.store.sqlite import SqliteStore

    with tempfile.TemporaryDirectory() as folder:
        path = (args.keep or Path(folder) / "api.db").resolve()
        log(f"\nsqlite: {path}")
        seeded = seed_sqlite(path, plan, templates)
        figures = {"seed": _seed_figures(seeded), "file_mib": round(path.stat().st_size / 2**20)}
        url = f"sqlite:///{path}"
        store = SqliteStore(url)
        try:
            started = time.perf_counter()
            store.setup()  # what the server's open_store does: migrates a file of an older layout, refreshes statistics
            figures["setup_s"] = round(time.perf_counter() - started, 2)
            log(f"sqlite: setup (schema migration, statistics) took {figures['setup_s']} s")
            secrets = issue_tokens(store, seeded.plan.tenants)
            workload = _workload(seeded, templates, secrets)
            figures.update(measure("sqlite", url, None, store, seeded, workload, args))
        finally:
            store.close()
    return figures


def es_sidecar(prefix: str) -> Path:
    return Path(tempfile.gettempdir()) / f"bench-api-es-{prefix}.json"


def kept_elasticsearch(store: Store, prefix: str, plan: SeedPlan) -> Seeded | None:
    """The seed kept under ``prefix``, if its sidecar matches the plan and the indices hold its counts."""
    info = es_sidecar(prefix)
    if not info.exists():
        return None
    kept = json.loads(info.read_text())
    kept_plan = SeedPlan.from_description(kept["plan"])
    if (kept_plan.incidents, kept_plan.alerts, kept_plan.tenants, kept_plan.events, kept_plan.layout,
            kept_plan.days) != (plan.incidents, plan.alerts, plan.tenants, plan.events, plan.layout, plan.days):
        raise SystemExit(f"bench: prefix {prefix} holds another seed ({kept['plan']}); pass another --es-keep")
    stored = store.incidents.count(Scope.all(), RecordQuery())
    if stored != kept["counts"]["incidents"]:
        raise SystemExit(f"bench: prefix {prefix} holds {stored} incidents, its sidecar {info} says "
                         f"{kept['counts']['incidents']}; delete both and seed again")
    log(f"elasticsearch: reusing prefix {prefix}, seeded {kept['plan']['now']}")
    statuses = Counter({tuple(key.split("|")): n for key, n in kept["statuses"].items()})
    return Seeded(kept_plan, statuses, kept["counts"], None)


def run_elasticsearch(args: argparse.Namespace, plan: SeedPlan,
                      templates: Callable[[], list[Template]]) -> dict[str, Any]:
    from civicsoc.store.elasticsearch import ElasticsearchStore

    prefix = args.es_keep or f"bench-api-{uuid.uuid4().hex[:8]}"
    log(f"\nelasticsearch: {args.es_url}, prefix {prefix}")
    store = ElasticsearchStore(args.es_url, prefix=prefix)
    try:
        store.setup()
        seeded = kept_elasticsearch(store, prefix, plan) if args.es_keep else None
        if seeded is None:
            seeded = seed_elasticsearch(args.es_url, prefix, plan, templates())
            if args.es_keep:
                es_sidecar(prefix).write_text(json.dumps({
                    "plan": plan.describe(), "counts": seeded.counts,
                    "statuses": {"|".join(key): n for key, n in seeded.statuses.items()}}))
        figures = {"seed": _seed_figures(seeded)}
        secrets = issue_tokens(store, seeded.plan.tenants)
        store.refresh()
        workload = _workload(seeded, templates, secrets)
        figures.update(measure("elasticsearch", args.es_url, prefix, store, seeded, workload, args))
    finally:
        if not args.es_keep:
            try:
                store.drop()
            except Exception as exc:  # the node may be why we are here: say what is left behind
                log(f"elasticsearch: could not delete the indices {prefix}-* ({type(exc).__name__}: {exc}); "
                    "delete them")
        store.close()
    return figures


if __name__ == "__main__":
    main()
