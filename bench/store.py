"""Store benchmark: append throughput and query latency on each backend.

    python -m bench.store [--events 200000] [--backend sqlite|elasticsearch|all] [--es-url URL]

Appends N real-shaped ECS events (OTRF Windows events, cycled with fresh ids) through
``Store.append_events`` in batches of 1000, as the shipper will, and compares with the raw path
for the same pre-built documents: ``helpers.bulk`` for Elasticsearch, ``executemany`` for SQLite.
Then it times a tenant + one-day search, a count and a terms aggregation. Figures are printed as
a table and as one JSON line (for notes and comparisons across commits).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.sample_events import otrf_events
from civicsoc.event import Event
from civicsoc.store import EventQuery, Scope, Store, Terms, TimeRange

TENANT = "bench-agency"
BATCH = 1000


def build_events(count: int) -> list[Event]:
    # Cycles of the ~9.5k events (9 days) are shifted by a second: the same 9 daily indices fill up,
    # as a busy agency's days do, rather than hundreds of tiny ones.
    return list(otrf_events(TENANT, count, cycle_shift=timedelta(seconds=1)))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def append_all(store: Store, events: list[Event]) -> int:
    stored = 0
    for start in range(0, len(events), BATCH):
        result = store.append_events(events[start:start + BATCH])
        if result.rejected or result.retry:
            raise SystemExit(f"bench: {len(result.rejected)} rejected, {len(result.retry)} to retry: "
                             f"{result.rejected[:1]}")
        stored += result.stored
    return stored


def append_figures(stored: int, seconds: float) -> dict[str, Any]:
    return {"events": stored, "seconds": round(seconds, 2), "events_per_s": round(stored / seconds)}


def latencies(fn: Callable[[], Any], runs: int = 30) -> dict[str, float]:
    fn()  # warm caches once
    samples = sorted(timed(fn)[0] * 1000 for _ in range(runs))
    return {"median_ms": round(statistics.median(samples), 2), "p95_ms": round(samples[int(runs * 0.95) - 1], 2)}


def query_figures(store: Store, events: list[Event]) -> dict[str, Any]:
    first_day = min(e.timestamp for e in events).replace(hour=0, minute=0, second=0, microsecond=0)
    day = TimeRange(first_day, first_day + timedelta(days=1))
    scope = Scope.of(TENANT)
    query = EventQuery(day)
    return {
        "search_1day_100": latencies(lambda: store.search_events(scope, query, limit=100)),
        "count_1day": latencies(lambda: store.count_events(scope, query)),
        "terms_event_code_1day": latencies(lambda: store.aggregate_events(scope, query, Terms("event.code"))),
        "filter_channel_1day_100": latencies(lambda: store.search_events(
            scope, EventQuery.where(day, {"winlog.channel": "Security"}), limit=100)),
    }


def bench_sqlite(events: list[Event], paths: set[str]) -> dict[str, Any]:
    import sqlite3

    from civicsoc.store.sqlite import SCHEMA, SqliteStore, to_micros

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        if "store" in paths:
            store = SqliteStore(f"sqlite:///{Path(folder) / 'bench.db'}")
            store.setup()
            seconds, stored = timed(lambda: append_all(store, events))
            figures.update(append_figures(stored, seconds))
            figures["queries"] = query_figures(store, events)
            store.close()
        if "raw" not in paths:
            return figures

        # The raw path: the same rows through executemany, same schema and pragmas, no store code.
        rows = [(e.id, e.tenant, to_micros(e.timestamp), orjson.dumps(e.fields).decode()) for e in events]
        raw = sqlite3.connect(Path(folder) / "raw.db", isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=FULL")
        raw.executescript(SCHEMA)

        def raw_insert() -> None:
            for start in range(0, len(rows), BATCH):
                raw.execute("BEGIN IMMEDIATE")
                raw.executemany("INSERT INTO events (id, tenant, ts, doc) VALUES (?, ?, ?, ?) "
                                "ON CONFLICT (id) DO NOTHING", rows[start:start + BATCH])
                raw.execute("COMMIT")

        raw_seconds, _ = timed(raw_insert)
        raw.close()
    figures["raw_events_per_s"] = round(len(events) / raw_seconds)
    if "store" in paths:
        figures["ratio_store_vs_raw"] = round(figures["events_per_s"] / figures["raw_events_per_s"], 3)
    return figures


def bench_elasticsearch(events: list[Event], url: str, paths: set[str]) -> dict[str, Any]:
    from elasticsearch import helpers

    from civicsoc.store.elasticsearch import ElasticsearchStore

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    raw_prefix = f"{prefix}-raw"
    store = ElasticsearchStore(url, prefix=prefix)
    raw_store = ElasticsearchStore(url, prefix=raw_prefix)  # same template, so mapping work is equal
    figures: dict[str, Any] = {}
    try:
        store.setup()
        raw_store.setup()
        if "store" in paths:
            seconds, stored = timed(lambda: append_all(store, events))
            store.refresh()
            figures.update(append_figures(stored, seconds))
            figures["queries"] = query_figures(store, events)
        if "raw" not in paths:
            return figures
        actions = [{"_op_type": "create", "_index": raw_store.event_index(e.tenant, e.timestamp), "_id": e.id,
                    "_source": e.fields} for e in events]
        raw_seconds, (ok, _) = timed(lambda: helpers.bulk(raw_store.client, actions, chunk_size=BATCH,
                                                          max_chunk_bytes=100 * 1024 * 1024, stats_only=True))
        figures["raw_events_per_s"] = round(ok / raw_seconds)
        if "store" in paths:
            figures["ratio_store_vs_raw"] = round(figures["events_per_s"] / figures["raw_events_per_s"], 3)
        return figures
    finally:
        for each in (store, raw_store):
            each.drop()
            each.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--backend", choices=["sqlite", "elasticsearch", "all"], default="all")
    parser.add_argument("--es-url", default="http://127.0.0.1:9200")
    parser.add_argument("--path", choices=["both", "store", "raw"], default="both",
                        help="time only the store path or only the raw path (for whole-process comparisons)")
    args = parser.parse_args()
    paths = {"store", "raw"} if args.path == "both" else {args.path}

    build_seconds, events = timed(lambda: build_events(args.events))
    print(f"built {len(events)} events in {build_seconds:.1f} s "
          f"(peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB)")
    results: dict[str, Any] = {"events": len(events)}
    if args.backend in ("sqlite", "all"):
        results["sqlite"] = bench_sqlite(events, paths)
    if args.backend in ("elasticsearch", "all"):
        results["elasticsearch"] = bench_elasticsearch(events, args.es_url, paths)

    for backend in ("sqlite", "elasticsearch"):
        if backend not in results:
            continue
        r = results[backend]
        raw_name = "helpers.bulk" if backend == "elasticsearch" else "executemany"
        if "events_per_s" in r:
            print(f"\n{backend}: store appended {r['events']} events in {r['seconds']} s "
                  f"= {r['events_per_s']} events/s")
        if "raw_events_per_s" in r:
            print(f"{backend}: raw {raw_name} of the same documents: {r['raw_events_per_s']} events/s")
        if "ratio_store_vs_raw" in r:
            print(f"{backend}: store/raw = {r['ratio_store_vs_raw']}")
        for name, figure in r.get("queries", {}).items():
            print(f"  {name:28} median {figure['median_ms']:8.2f} ms   p95 {figure['p95_ms']:8.2f} ms")
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
