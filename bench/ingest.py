"""EVTX ingest benchmark: records per second through each stage of the pipeline.

    python -m bench.ingest [--stage bare|xml|mapper|map|all] [--repeat 3] [--dir DIR ...]

Stages, each over every .evtx in the shared EVTX corpora (or ``--dir``):

- ``bare``: the ``evtx`` crate's ``records_json()`` plus ``orjson.loads`` per record, nothing else:
  the floor any EVTX ingest pays.
- ``xml``: the crate's ``records()`` parsed with ``xml.etree.ElementTree``: the alternative to JSON
  (a structure is needed either way), for the record of why the reader uses JSON.
- ``mapper``: ``bare`` plus ``map_windows_record``: what the pure mapper adds.
- ``map``: ``collectors.evtx.read_evtx`` — crate → orjson → ``map_windows_record`` →
  ``CollectorContext.event`` (deterministic id, stamping): what the collector really does.
- ``sqlite``: ``map`` → the shipper → the embedded store (a fresh file each run).
- ``elasticsearch``: ``map`` → the shipper → Elasticsearch (``--es-url``, a fresh index prefix each run).
- ``raw_bulk``: ``helpers.bulk`` of the same documents, built before the clock starts, into the same
  index layout: the ceiling for shipping to Elasticsearch (the ``elasticsearch`` stage's target is
  ≥ 90 % of it).

Each stage runs ``--repeat`` times; the medians of wall-clock and of CPU time are reported, with
each stage's ratio to ``bare``, as a table and as one JSON line. New stages (``→ SQLite store``, ``→ Elasticsearch``)
are functions ``stage_<name>(files) -> int`` (records handled) registered in ``STAGES``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import orjson
from evtx import PyEvtxParser

from collectors.base import CollectorContext, DeadLetter
from collectors.ecs.windows import map_windows_record
from collectors.evtx import read_evtx

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPORA = ("evtx-attack-samples", "evtx-to-mitre-attack", "deepbluecli-evtx", "hayabusa-sample-evtx",
           "sigmahq-regression-data")


def evtx_files(directories: Sequence[Path]) -> list[Path]:
    files = sorted({path for directory in directories for path in directory.rglob("*")
                    if path.is_file() and path.suffix.lower() == ".evtx"})
    if not files:
        raise SystemExit(f"bench: no .evtx files under {', '.join(map(str, directories))}")
    return files


def _records_json(path: Path) -> Iterator[dict[str, Any]]:
    """Every record the crate yields; decoding failures are skipped (the reader dead-letters them)."""
    records = PyEvtxParser(str(path)).records_json()
    while True:
        try:
            yield next(records)
        except StopIteration:
            return
        except RuntimeError:
            continue


def stage_bare(files: Sequence[Path]) -> int:
    count = 0
    loads = orjson.loads
    for path in files:
        for raw in _records_json(path):
            loads(raw["data"])
            count += 1
    return count


def stage_xml(files: Sequence[Path]) -> int:
    count = 0
    for path in files:
        records = PyEvtxParser(str(path)).records()
        while True:
            try:
                raw = next(records)
            except StopIteration:
                break
            except RuntimeError:
                continue
            # A few of the crate's XML renderings are not well-formed; they still cost the parse.
            with contextlib.suppress(ElementTree.ParseError):
                ElementTree.fromstring(raw["data"])
            count += 1
    return count


def stage_mapper(files: Sequence[Path]) -> int:
    count = 0
    loads = orjson.loads
    for path in files:
        for raw in _records_json(path):
            map_windows_record(loads(raw["data"]))
            count += 1
    return count


def stage_map(files: Sequence[Path]) -> int:
    context = CollectorContext(tenant="bench-agency")
    count = 0
    for path in files:
        for item in read_evtx(path, context):
            if not isinstance(item.value, DeadLetter):
                count += 1
    return count


def _ship(files: Sequence[Path], store: Any) -> int:
    from collectors.shipper import Shipper

    context = CollectorContext(tenant="bench-agency")
    with tempfile.TemporaryDirectory() as state:
        shipper = Shipper(store, state_dir=Path(state)).start()
        for path in files:
            for item in read_evtx(path, context):
                shipper.put(item, "evtx")
        if not shipper.stop(drain=True):
            raise SystemExit(f"bench: the store did not take everything ({shipper.last_store_error})")
        return shipper.stored + shipper.duplicates


def stage_sqlite(files: Sequence[Path]) -> int:
    from civicsoc.store.sqlite import SqliteStore

    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(f"sqlite:///{Path(folder) / 'bench.db'}")
        store.setup()
        try:
            return _ship(files, store)
        finally:
            store.close()


ES_URL = "http://127.0.0.1:9200"


@contextlib.contextmanager
def _fresh_es_store() -> Iterator[Any]:
    from civicsoc.store.elasticsearch import ElasticsearchStore

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    store = ElasticsearchStore(ES_URL, prefix=prefix)
    store.setup()
    try:
        yield store
    finally:
        store.drop()
        store.close()


def stage_elasticsearch(files: Sequence[Path]) -> int:
    with _fresh_es_store() as store:
        return _ship(files, store)


def stage_raw_bulk(files: Sequence[Path]) -> int:
    from elasticsearch import helpers

    documents = _prebuilt(files)
    with _fresh_es_store() as store:
        started = time.perf_counter()
        actions = ({"_op_type": "create", "_index": store.event_index(e.tenant, e.timestamp), "_id": e.id,
                    "_source": e.fields} for e in documents)
        # The corpora hold a few identical records in several exports: their second create is a
        # 409, which the store counts as an acknowledged duplicate, so it counts here too.
        ok, conflicts = helpers.bulk(store.client, actions, chunk_size=1000, stats_only=True, raise_on_error=False)
        _EXCLUDED.append(started)
        return ok + conflicts


_PREBUILT: dict[tuple[Path, ...], list[Any]] = {}
_EXCLUDED: list[float] = []
"""``raw_bulk`` builds its documents before its clock starts: it records the start here."""


def _prebuilt(files: Sequence[Path]) -> list[Any]:
    key = tuple(files)
    if key not in _PREBUILT:
        context = CollectorContext(tenant="bench-agency")
        _PREBUILT[key] = [item.value for path in files for item in read_evtx(path, context)
                          if not isinstance(item.value, DeadLetter)]
    return _PREBUILT[key]


STAGES: dict[str, Callable[[Sequence[Path]], int]] = {
    "bare": stage_bare,
    "xml": stage_xml,
    "mapper": stage_mapper,
    "map": stage_map,
    "sqlite": stage_sqlite,
    "elasticsearch": stage_elasticsearch,
    "raw_bulk": stage_raw_bulk,
}
"""Stage name → function(files) -> records handled. Add ``store``/``elasticsearch`` stages here."""


def measure(stage: Callable[[Sequence[Path]], int], files: Sequence[Path], repeat: int) -> dict[str, Any]:
    """Median wall-clock and CPU time of ``repeat`` runs. CPU time (all threads of the process) is
    the steadier figure on a shared machine; wall-clock is what a user waits."""
    stage(files[:5])  # warm imports and caches once
    walls, cpus = [], []
    count = 0
    for _ in range(repeat):
        if stage is stage_raw_bulk:
            _prebuilt(files)
        wall, cpu = time.perf_counter(), time.process_time()
        count = stage(files)
        if _EXCLUDED:  # time only what comes after the stage's own preparation
            wall = max(wall, _EXCLUDED.pop())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    wall_s, cpu_s = statistics.median(walls), statistics.median(cpus)
    return {"records": count, "median_s": round(wall_s, 4), "records_per_s": round(count / wall_s),
            "median_cpu_s": round(cpu_s, 4), "records_per_cpu_s": round(count / cpu_s),
            "runs_s": [round(run, 4) for run in walls]}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=[*STAGES, "all"], default="all")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, action="append", help="folder of .evtx files (default: shared corpora)")
    parser.add_argument("--es-url", default="http://127.0.0.1:9200")
    parser.add_argument("--skip", action="append", default=[], choices=list(STAGES),
                        help="leave a stage out of 'all' (e.g. elasticsearch and raw_bulk without a node)")
    args = parser.parse_args(argv)
    global ES_URL
    ES_URL = args.es_url
    files = evtx_files(args.dir or [SHARED_DATA / name for name in CORPORA])
    if args.stage == "all":
        names = [name for name in STAGES if name not in args.skip]
    else:
        names = ["bare", args.stage] if args.stage != "bare" else ["bare"]
    results = {name: measure(STAGES[name], files, args.repeat) for name in names}
    bare, bare_cpu = results["bare"]["records_per_s"], results["bare"]["records_per_cpu_s"]
    print(f"{len(files)} files, median of {args.repeat} runs")
    print(f"{'stage':<8} {'records':>9} {'median s':>9} {'records/s':>11} {'vs bare':>8} "
          f"{'rec/cpu-s':>11} {'vs bare':>8}")
    for name, figures in results.items():
        figures["ratio_to_bare"] = round(figures["records_per_s"] / bare, 3)
        figures["cpu_ratio_to_bare"] = round(figures["records_per_cpu_s"] / bare_cpu, 3)
        print(f"{name:<8} {figures['records']:>9} {figures['median_s']:>9} {figures['records_per_s']:>11} "
              f"{figures['ratio_to_bare']:>8.1%} {figures['records_per_cpu_s']:>11} "
              f"{figures['cpu_ratio_to_bare']:>8.1%}")
    if "elasticsearch" in results and "raw_bulk" in results:
        ratio = results["elasticsearch"]["records_per_s"] / results["raw_bulk"]["records_per_s"]
        print(f"shipping to Elasticsearch = {ratio:.1%} of raw helpers.bulk of the same documents")
    print(json.dumps({"files": len(files), "repeat": args.repeat, "stages": results}))


if __name__ == "__main__":
    main()
