"""``civicsoc collect``: run the configured sources until stopped, through one shipper.

Each source runs in a thread of its own and hands items to the shared shipper (whose ``put``
blocks when the store falls behind). A stop (SIGTERM, Ctrl-C) ends the sources, then drains: what
was read is stored and its checkpoints committed, within ``drain_timeout``. A source that fails is
reported in the metrics and the log and the others go on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import orjson

from civicsoc.store import Store
from collectors.base import CollectorContext, Item
from collectors.config import (
    CollectorConfig,
    EvtxDirectorySource,
    PcapLiveSource,
    Source,
    SyslogSource,
    TailSource,
    zone,
)
from collectors.shipper import DetectionHook, Shipper

log = logging.getLogger(__name__)
METRICS_INTERVAL = 10.0


@dataclass
class SourceState:
    name: str
    kind: str
    status: str = "starting"
    error: str | None = None
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


class Collector:
    def __init__(self, config: CollectorConfig, store: Store, *, detection: DetectionHook | None = None) -> None:
        self.config = config
        self.context = CollectorContext(tenant=config.tenant, agent_id=config.collector_id,
                                        keep_original=config.keep_original)
        self.shipper = Shipper(store, state_dir=config.state_dir, batch_size=config.batch_size,
                               flush_interval=config.flush_interval, spool_max_bytes=config.spool_max_mb << 20,
                               detection=detection)
        self.states = {source.name: SourceState(source.name, source.type) for source in config.sources}
        self._threads: list[threading.Thread] = []
        self._stoppers: list[Callable[[], None]] = []

    def run(self, stop: threading.Event, *, ready: Callable[[], None] | None = None) -> bool:
        """Run until ``stop`` is set; returns whether the drain stored everything that was read."""
        self.shipper.start()
        for source in self.config.sources:
            self._start(source, stop)
        if ready is not None:
            ready()
        while not stop.wait(METRICS_INTERVAL):
            self.write_metrics()
        for stopper in self._stoppers:
            stopper()
        for thread in self._threads:
            thread.join(timeout=max(5.0, self.config.drain_timeout))
        drained = self.shipper.stop(drain=True, timeout=self.config.drain_timeout)
        self.write_metrics()
        if not drained:
            log.warning("stopped before the store took everything; file sources resume from their checkpoints "
                        "and push sources from the spool at the next start")
        return drained

    def sink(self, name: str) -> Callable[[Item], None]:
        return partial(self.shipper.put, source=name)

    def _start(self, source: Source, stop: threading.Event) -> None:
        state = self.states[source.name]
        try:
            if isinstance(source, TailSource):
                self._thread(state, partial(self._run_tail, source, stop))
            elif isinstance(source, EvtxDirectorySource):
                self._thread(state, partial(self._run_evtx_dir, source, stop))
            elif isinstance(source, SyslogSource):
                self._start_syslog(source)
            elif isinstance(source, PcapLiveSource):
                self._thread(state, partial(self._run_pcap_live, source, stop))
            state.status = "running"
        except Exception as exc:  # one broken source must not take the others down
            state.status, state.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("source %s failed to start: %s", source.name, state.error)

    def _thread(self, state: SourceState, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
                state.status = "stopped"
            except Exception as exc:
                state.status, state.error = "failed", f"{type(exc).__name__}: {exc}"
                log.exception("source %s failed", state.name)

        thread = threading.Thread(target=run, name=f"source-{state.name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _run_tail(self, source: TailSource, stop: threading.Event) -> None:
        from collectors.sources import line_parser
        from collectors.tail import Tailer

        parser = line_parser(source.format)
        if source.format in ("syslog", "auth"):
            from collectors.ecs.syslog import parse_syslog_line

            parser = partial(_now_bound, parse_syslog_line, zone(source.timezone))
        tailer = Tailer(source.paths, parser, self.context, committed=self.shipper.committed_offset,
                        poll_interval=source.poll_interval, max_line=source.max_line_bytes)
        tailer.run(self.sink(source.name), stop)

    def _run_evtx_dir(self, source: EvtxDirectorySource, stop: threading.Event) -> None:
        from collectors.evtx import read_evtx, source_identity

        sink = self.sink(source.name)
        finished: dict[Path, tuple[int, float]] = {}
        while not stop.is_set():
            for path in sorted(source.path.glob("*.evtx")):
                stat = path.stat()
                signature = (stat.st_size, stat.st_mtime)
                if finished.get(path) == signature or time.time() - stat.st_mtime < 1.0:
                    continue  # read already, or still being written
                start = self.shipper.committed_offset(source_identity(path))
                for item in read_evtx(path, self.context, start_record=start):
                    sink(item)
                    if stop.is_set():
                        return
                finished[path] = signature
            stop.wait(source.poll_interval)

    def _start_syslog(self, source: SyslogSource) -> None:
        from collectors.syslog import SyslogServer, TlsConfig

        tls = None
        if source.tls is not None:
            tls = TlsConfig(certfile=source.tls.certificate, keyfile=source.tls.key, port=source.tls.port,
                            client_ca_file=source.tls.client_ca)
        server = SyslogServer(self.context, self.sink(source.name), host=source.host, udp_port=source.udp_port,
                              tcp_port=source.tcp_port, tls=tls, max_message_size=source.max_message_bytes,
                              tz=zone(source.timezone))
        server.start()
        self._stoppers.append(partial(server.stop, drain=True))

    def _run_pcap_live(self, source: PcapLiveSource, stop: threading.Event) -> None:
        from collectors.pcap import capture_live

        capture_live(source.interface, self.context, self.sink(source.name), bpf_filter=source.bpf_filter, stop=stop)

    def write_metrics(self) -> None:
        """``<state_dir>/metrics.json``: what agency IT looks at to see a source fall silent."""
        shipper = self.shipper.snapshot()
        counters: dict[str, dict[str, object]] = shipper.pop("sources")  # type: ignore[assignment]
        snapshot = {
            "collector_id": self.config.collector_id,
            "tenant": self.config.tenant,
            "time": datetime.now(UTC).isoformat(),
            "sources": {
                name: {"type": state.kind, "status": state.status, "error": state.error, **counters.get(name, {})}
                for name, state in self.states.items()
            },
            "shipper": shipper,
        }
        path = self.config.state_dir / "metrics.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(snapshot, option=orjson.OPT_INDENT_2))
        os.replace(temporary, path)


def _now_bound(parse: Callable[..., object], tz: object, line: str) -> object:
    """RFC 3164 lines carry no year: each line is read with the current time as reference."""
    return parse(line, now=datetime.now(UTC), tz=tz)
