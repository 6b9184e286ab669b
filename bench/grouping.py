"""Incident grouping under an alert flood: per alert (``IncidentGrouper.add``) vs per batch (``add_batch``).

    python -m bench.grouping [--file EVTX] [--backend sqlite|elasticsearch|all] [--batch 1000] [--es-url URL]

A password-guessing capture (real EVTX, 3,561 events) run through SigmaHQ's Security rules raises
thousands of alerts on one host: the case that made grouping the bottleneck of ``civicsoc ingest``.
The alerts are computed once (engine and correlations, no store); each path then stores and groups
the same alerts into a fresh store, in shipper-sized batches, and the resulting partitions are
compared (they must be equal). Reported: seconds, alerts per second, and the ratio of the two paths.
This is a benchmark, not a test: it checks the partitions agree, never the speed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from civicsoc.errors import AlreadyExists
from civicsoc.event import Event
from civicsoc.records import Alert, IncidentStatus
from civicsoc.store import RecordQuery, Scope, Store
from collectors.base import CollectorContext
from collectors.evtx import read_evtx
from detection.alerts import alert_from_events
from detection.engine import IndexedEngine
from detection.findings import Correlator, Finding
from detection.incidents import IncidentGrouper
from detection.rules import load_rules

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEFAULT_FILE = SHARED / "deepbluecli-evtx" / "evtx" / "smb-password-guessing-security.evtx"
RULES = SHARED / "sigmahq-sigma" / "rules" / "windows" / "builtin" / "security"


def flood(path: Path) -> list[Alert]:
    """The alerts the stream would raise on ``path``, in event-time order."""
    rules = load_rules([RULES])
    engine, correlator = IndexedEngine(rules.detections), Correlator(rules)
    events = sorted((item.value for item in read_evtx(path, CollectorContext(tenant="bench"))
                     if isinstance(item.value, Event)), key=lambda e: (e.timestamp, e.id))
    alerts: list[Alert] = []
    for event in events:
        for match in engine.match(event):
            findings = [Finding(match.rule, (event,))] if match.rule.generates_alerts else []
            findings += correlator.feed(match, None)
            alerts += [alert_from_events(f.rule, list(f.events)) for f in findings]
    return alerts


def per_alert(store: Store, batch: Sequence[Alert], grouper: IncidentGrouper) -> None:
    """The path before batching: each alert created, then grouped (three committed writes each)."""
    for alert in batch:
        try:
            store.alerts.create(Scope.all(), alert)
        except AlreadyExists:
            continue
        grouper.add(alert.id)


def per_batch(store: Store, batch: Sequence[Alert], grouper: IncidentGrouper) -> None:
    grouper.add_batch(batch)


PATHS: dict[str, Callable[[Store, Sequence[Alert], IncidentGrouper], None]] = {
    "per_alert": per_alert, "per_batch": per_batch}


@contextmanager
def fresh_store(backend: str, es_url: str) -> Iterator[Store]:
    if backend == "sqlite":
        from civicsoc.store.sqlite import SqliteStore

        with tempfile.TemporaryDirectory() as folder:
            store: Store = SqliteStore(f"sqlite:///{Path(folder) / 'grouping.db'}")
            store.setup()
            try:
                yield store
            finally:
                store.close()
    else:
        from civicsoc.store.elasticsearch import ElasticsearchStore

        es = ElasticsearchStore(es_url, prefix=f"bench-grouping-{uuid.uuid4().hex[:8]}")
        es.setup()
        try:
            yield es
        finally:
            es.drop()
            es.close()


def partition(store: Store) -> set[frozenset[str]]:
    store.refresh()
    page = store.incidents.list(Scope.all(), RecordQuery(sort="id", limit=5000))
    return {frozenset(i.record.alert_ids) for i in page.items if i.record.status != IncidentStatus.duplicate}


def run(backend: str, alerts: list[Alert], batch_size: int, es_url: str) -> dict[str, object]:
    figures: dict[str, object] = {"backend": backend, "alerts": len(alerts)}
    partitions = {}
    for name, path in PATHS.items():
        with fresh_store(backend, es_url) as store:
            grouper = IncidentGrouper(store)
            started = time.perf_counter()
            for start in range(0, len(alerts), batch_size):
                path(store, alerts[start:start + batch_size], grouper)
            seconds = time.perf_counter() - started
            partitions[name] = partition(store)
        figures[f"{name}_s"] = round(seconds, 2)
        figures[f"{name}_alerts_per_s"] = round(len(alerts) / seconds, 1)
    figures["incidents"] = len(partitions["per_batch"])
    figures["same_partition"] = partitions["per_alert"] == partitions["per_batch"]
    figures["speedup"] = round(float(figures["per_alert_s"]) / float(figures["per_batch_s"]), 1)  # type: ignore[arg-type]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--backend", choices=["sqlite", "elasticsearch", "all"], default="all")
    parser.add_argument("--batch", type=int, default=1000, help="alerts per shipper batch")
    parser.add_argument("--es-url", default="http://127.0.0.1:9200")
    args = parser.parse_args()
    alerts = flood(args.file)
    print(f"{args.file.name}: {len(alerts)} alerts")
    backends = ["sqlite", "elasticsearch"] if args.backend == "all" else [args.backend]
    results = []
    for backend in backends:
        figures = run(backend, alerts, args.batch, args.es_url)
        results.append(figures)
        print(f"{backend:<14} per alert {figures['per_alert_s']:>8} s ({figures['per_alert_alerts_per_s']} alerts/s)"
              f"   per batch {figures['per_batch_s']:>7} s ({figures['per_batch_alerts_per_s']} alerts/s)"
              f"   x{figures['speedup']}   {figures['incidents']} incidents, "
              f"same partition: {figures['same_partition']}")
        if not figures["same_partition"]:
            raise SystemExit("bench: the two paths grouped differently")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
