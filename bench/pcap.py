"""Packets per second of the two capture engines, on the shared pcaps: ``python -m bench.pcap``.

Each engine reads every capture under the shared data folders through ``read_pcap`` (dissection,
flow table, mapping, stamping: the whole path to ``Item``s), ``--repeat`` times; the median wall time
of the runs gives packets/s, over all files and over the large ones alone (where tshark's start-up,
~0.2 s a file, stops dominating). Packet counts come from ``capinfos``, not from the code measured.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

from collectors.base import CollectorContext
from collectors.pcap import read_pcap

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PCAP_FOLDERS = ("pcap-attack", "chrissanders-packets", "suricata-verify-pcaps", "trace-share-ssh-bruteforce",
                "stopddos-packet-captures", "dns-tunnel-pcaps")
LARGE = 5_000
"""Packets from which a capture counts as large."""


def shared_pcaps() -> list[Path]:
    files = sorted(path for folder in PCAP_FOLDERS for path in (SHARED_DATA / folder).rglob("*")
                   if path.suffix in (".pcap", ".pcapng"))
    if not files:
        raise FileNotFoundError(f"no captures under {SHARED_DATA}: is ../shared/data in place?")
    return files


def packet_count(path: Path) -> int:
    output = subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(path)], capture_output=True, text=True,
                            check=True).stdout
    return int(output.split("\t")[-1])


def timed_read(files: list[Path], engine: str) -> tuple[float, int]:
    context = CollectorContext(tenant="bench")
    items = 0
    started = time.perf_counter()
    for path in files:
        for _ in read_pcap(path, context, engine=engine):  # type: ignore[arg-type]
            items += 1
    return time.perf_counter() - started, items


def measure(files: list[Path], engine: str, repeat: int) -> tuple[float, int]:
    runs = [timed_read(files, engine) for _ in range(repeat)]
    return statistics.median(seconds for seconds, _ in runs), runs[0][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine (the median is reported)")
    parser.add_argument("--engines", nargs="+", default=["tshark", "pyshark"], choices=["tshark", "pyshark"])
    options = parser.parse_args()

    files = shared_pcaps()
    counts = {path: packet_count(path) for path in files}
    large = [path for path in files if counts[path] >= LARGE]
    sets = {"all": files, f"large (>= {LARGE} packets)": large}
    print(f"{len(files)} captures, {sum(counts.values())} packets; {len(large)} large captures, "
          f"{sum(counts[path] for path in large)} packets; median of {options.repeat} runs")
    rates: dict[tuple[str, str], float] = {}
    for name, chosen in sets.items():
        packets = sum(counts[path] for path in chosen)
        for engine in options.engines:
            seconds, items = measure(chosen, engine, options.repeat)
            rates[name, engine] = packets / seconds
            print(f"{name:<26} {engine:<8} {seconds:8.2f} s  {packets / seconds:10.0f} packets/s  "
                  f"{items} items")
        if len(options.engines) == 2:
            ratio = rates[name, "tshark"] / rates[name, "pyshark"]
            print(f"{name:<26} tshark fields path is {ratio:.1f}x the pyshark path")


if __name__ == "__main__":
    main()
