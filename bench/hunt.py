"""Hunt benchmark: events per second of Sigma matching over the shared EVTX corpus, indexed vs naive.

    python -m bench.hunt [--repeat 3] [--naive-every 4] [--rules DIR ...] [--dir DIR ...]

With every SigmaHQ Windows rule loaded (``logsource.product: windows`` under ``rules/``,
``rules-emerging-threats/`` and ``rules-threat-hunting/``, or ``--rules``), in one process, one core:

- ``load``: ``detection.rules.load_rules`` of the rule directories (parse, map, compile).
- ``end_to_end``: ``collectors.evtx.read_evtx`` → ``IndexedEngine.match`` for every record of every file,
  streamed (a fresh engine each run: its dispatch buckets are built as events arrive). Peak RSS is read
  right after, before anything else is held in memory: it shows what streaming a corpus costs.
- ``indexed``: matching only, over the events parsed beforehand (a fresh engine each run).
- ``naive``: every rule on every event — the reference — over every ``--naive-every``-th pre-parsed event
  (the whole corpus takes minutes); ``indexed_sample`` is the indexed engine on that same sample, and
  the speed-up is their ratio.

Each stage runs ``--repeat`` times; medians are reported as a table and as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.ingest import evtx_files
from civicsoc.event import Event
from collectors.base import CollectorContext
from collectors.evtx import read_evtx
from detection.engine import IndexedEngine, NaiveEngine
from detection.rules import Rule, load_rules

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RULE_DIRS = ("rules", "rules-emerging-threats", "rules-threat-hunting")
CORPORA = ("evtx-attack-samples", "evtx-to-mitre-attack", "deepbluecli-evtx", "hayabusa-sample-evtx",
           "evtx-parser-samples", "sigmahq-regression-data")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def timed(run: Callable[[], int], repeat: int) -> dict[str, float]:
    """Median wall and CPU seconds of ``run`` (which returns how many items it handled)."""
    walls, cpus, counts = [], [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        counts.append(run())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {"items": counts[0], "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "per_s": round(counts[0] / wall, 1) if wall else 0.0}


def windows_rules(directories: Sequence[Path]) -> tuple[list[Rule], int]:
    loaded = load_rules(directories)
    return [rule for rule in loaded.detections if rule.logsource.product == "windows"], len(loaded.skipped)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hunt", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--naive-every", type=int, default=4, help="naive engine on every N-th event")
    parser.add_argument("--rules", type=Path, action="append", help="rule directory (default: SigmaHQ's)")
    parser.add_argument("--dir", type=Path, action="append", help="EVTX directory (default: the shared corpora)")
    args = parser.parse_args(argv)
    rule_dirs = args.rules or [SHARED_DATA / "sigmahq-sigma" / name for name in RULE_DIRS]
    files = evtx_files(args.dir or [SHARED_DATA / name for name in CORPORA])
    context = CollectorContext(tenant="bench")
    results: dict[str, Any] = {}

    rules: list[Rule] = []

    def load() -> int:
        nonlocal rules
        rules, _ = windows_rules(rule_dirs)
        return len(rules)
    results["load"] = timed(load, args.repeat)
    results["rss_after_load_mib"] = round(peak_rss_mib(), 1)

    def end_to_end() -> int:
        engine = IndexedEngine(rules)
        count = 0
        for path in files:
            for item in read_evtx(path, context):
                if isinstance(item.value, Event):
                    engine.match(item.value)
                    count += 1
        return count
    results["end_to_end"] = timed(end_to_end, args.repeat)
    results["rss_after_streaming_mib"] = round(peak_rss_mib(), 1)

    documents = [item.value.fields for path in files for item in read_evtx(path, context)
                 if isinstance(item.value, Event)]

    def indexed_over(selection: list[dict[str, Any]]) -> Callable[[], int]:
        def run() -> int:
            engine = IndexedEngine(rules)
            for document in selection:
                engine.matching_rules(document)
            return len(selection)
        return run

    sample = documents[::args.naive_every]

    def naive() -> int:
        engine = NaiveEngine(rules)
        for document in sample:
            engine.matching_rules(document)
        return len(sample)
    results["indexed"] = timed(indexed_over(documents), args.repeat)
    results["indexed_sample"] = timed(indexed_over(sample), args.repeat)
    results["naive"] = timed(naive, args.repeat)
    results["speedup_indexed_vs_naive"] = round(results["indexed_sample"]["per_s"] / results["naive"]["per_s"], 1)
    results["rss_peak_mib"] = round(peak_rss_mib(), 1)
    results["rules"] = len(rules)
    results["files"] = len(files)
    results["statistics"] = IndexedEngine(rules).statistics()

    print(f"{len(rules)} Windows rules, {len(files)} EVTX files, median of {args.repeat} runs, one core")
    print(f"{'stage':<16}{'items':>9}{'wall s':>10}{'cpu s':>10}{'items/s':>12}")
    for stage in ("load", "end_to_end", "indexed", "indexed_sample", "naive"):
        row = results[stage]
        print(f"{stage:<16}{row['items']:>9}{row['wall_s']:>10}{row['cpu_s']:>10}{row['per_s']:>12}")
    print(f"indexed / naive on the same events: {results['speedup_indexed_vs_naive']}x")
    print(f"peak RSS: {results['rss_after_load_mib']} MiB after loading rules, "
          f"{results['rss_after_streaming_mib']} MiB after streaming the corpus, "
          f"{results['rss_peak_mib']} MiB with the whole corpus parsed in memory")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
