"""``civicsoc serve``: the API, the streaming pipeline and a built-in syslog collector in one process.

This is the one-box deployment a small agency runs: events sent to the syslog port go through the
rules on their way into the store, alerts become incidents (with their playbooks), and analysts work
them through the API. On the very first start there is no token yet, so one admin token is created
and printed once.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from civicsoc import __version__, heartbeats, tokens
from civicsoc.config import Settings
from civicsoc.records import Role, Token
from civicsoc.store import RecordQuery, Scope, Store
from civicsoc.tokens import IssuedToken, Principal

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 15.0
BUILTIN_COLLECTOR = "builtin"


def first_start(store: Store, tenant: str) -> IssuedToken | None:
    """Make sure the default tenant exists; create an admin token if the store has none at all."""
    tokens.ensure_tenant(store, tenant, "civicsoc serve", name=tenant)
    if store.records(Token).count(Scope.all(), RecordQuery()) > 0:
        return None
    return tokens.create_token(store, tenant=tenant, role=Role.admin, name="first-admin", actor="civicsoc serve")


def port_free(host: str, port: int, kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class BuiltinCollector:
    """The syslog receiver of ``serve``, run in a thread, with heartbeats written straight to the store."""

    collector: Any
    stop: threading.Event
    thread: threading.Thread

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def start_builtin_collector(settings: Settings, store: Store, detection: Callable[..., None] | None, *,
                            host: str, port: int) -> BuiltinCollector:
    from collectors.config import CollectorConfig, SyslogSource
    from collectors.runner import Collector

    tenant = settings.default_tenant
    config = CollectorConfig(
        tenant=tenant, collector_id=BUILTIN_COLLECTOR, state_dir=settings.data_dir / "collectors" / BUILTIN_COLLECTOR,
        sources=[SyslogSource(name="syslog", type="syslog", host=host, udp_port=port, tcp_port=port)],
    )
    config.state_dir.mkdir(parents=True, exist_ok=True)
    collector = Collector(config, store, detection=detection)
    stop = threading.Event()
    ready = threading.Event()

    def run() -> None:
        beat = threading.Thread(target=_beat, args=(collector, store, stop), name="heartbeat", daemon=True)
        beat.start()
        collector.run(stop, ready=ready.set)

    thread = threading.Thread(target=run, name="builtin-collector", daemon=True)
    thread.start()
    ready.wait(timeout=30)
    return BuiltinCollector(collector, stop, thread)


def heartbeat_of(collector: Any) -> dict[str, Any]:
    """A heartbeat body from a running collector's counters (the same fields remote collectors send)."""
    snapshot = collector.shipper.snapshot()
    sources = snapshot.get("sources", {})
    failed = [state for state in collector.states.values() if state.status == "failed"]
    last_times = [counters.get("last_event_time") for counters in sources.values() if counters.get("last_event_time")]
    return {
        "name": collector.config.collector_id, "version": __version__, "hostname": socket.gethostname(),
        "sources": sorted(collector.states), "lag_seconds": 0.0,
        "events_total": sum(int(c.get("read", 0)) for c in sources.values()),
        "errors": len(failed),
        "dead_letters": sum(int(c.get("dead_lettered", 0)) + int(c.get("rejected", 0)) for c in sources.values()),
        "details": {"failed_sources": {s.name: s.error for s in failed},
                    "last_event_time": max(last_times) if last_times else None},
    }


def _beat(collector: Any, store: Store, stop: threading.Event) -> None:
    principal = Principal.system(BUILTIN_COLLECTOR)
    while True:
        try:
            heartbeats.record(store, principal, collector.config.tenant, heartbeat_of(collector))
        except Exception:  # a missed heartbeat shows as "silent"; never take the collector down for it
            log.exception("heartbeat of the built-in collector failed")
        if stop.wait(HEARTBEAT_SECONDS):
            return
