"""A small SOC for API tests: real EVTX through the real detection pipeline into a real store, for two
tenants, plus a token of every role in each tenant.

Building it takes a few seconds, so the API test modules build it once per module and backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from civicsoc import tokens
from civicsoc.event import Event
from civicsoc.records import Role
from civicsoc.store import RecordQuery, Scope, Store
from collectors.base import CollectorContext
from collectors.evtx import read_evtx
from detection.rules import RuleSet, builtin_rules_path, load_rules
from detection.stream import StreamDetector
from playbooks.loader import load_playbooks

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SIGMA = SHARED / "sigmahq-sigma" / "rules" / "windows"
EVTX = SHARED / "deepbluecli-evtx" / "evtx"
FILES = ("password-spray.evtx", "new-user-security.evtx", "mimikatz-privesc-hashdump.evtx",
         "metasploit-psexec-native-target-security.evtx", "sliver-sysmon.evtx")
TENANTS = ("town-a", "town-b")


def soc_rules() -> RuleSet:
    return load_rules([builtin_rules_path(), SIGMA / "builtin" / "security", SIGMA / "builtin" / "system",
                       SIGMA / "process_creation"])


def ingest(store: Store, rules: RuleSet, tenant: str, files: tuple[str, ...] = FILES) -> int:
    detector = StreamDetector(rules, store)
    total = 0
    for name in files:
        events = [item.value for item in read_evtx(EVTX / name, CollectorContext(tenant=tenant))
                  if isinstance(item.value, Event)]
        detector(events)
        store.append_events(events)
        total += len(events)
    store.refresh()
    return total


@dataclass
class Soc:
    store: Store
    rules: RuleSet
    client: TestClient
    secrets: dict[tuple[str, Role], str] = field(default_factory=dict)
    admin: str = ""

    def headers(self, tenant: str, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[(tenant, role)]}"}

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}

    def incident_ids(self, tenant: str) -> list[str]:
        page = self.store.incidents.list(Scope.of(tenant), RecordQuery(limit=500))
        return [item.record.id for item in page.items]

    def alert_ids(self, tenant: str) -> list[str]:
        page = self.store.alerts.list(Scope.of(tenant), RecordQuery(limit=500))
        return [item.record.id for item in page.items]


def build_soc(store: Store, rules: RuleSet) -> Soc:
    for tenant in TENANTS:
        tokens.create_tenant(store, tenant, f"Town {tenant[-1].upper()}", "test-setup")
        ingest(store, rules, tenant)
    soc = Soc(store, rules, TestClient(create_app(store, ruleset=rules, playbooks=load_playbooks())))
    soc.client.app.state.services.extra["redaction_key"] = b"test-redaction-key-" + b"x" * 13
    for tenant in TENANTS:
        for role in Role:
            issued = tokens.create_token(store, tenant=tenant, role=role, name=f"{role.value}-{tenant}",
                                         actor="test-setup")
            soc.secrets[(tenant, role)] = issued.secret
    soc.admin = soc.secrets[("town-a", Role.admin)]
    return soc


def soc_per_backend(request: Any, tmp_path_factory: Any) -> Iterator[Soc]:
    """The body of a module-scoped fixture parametrized over ``sqlite`` and ``elasticsearch``."""
    es_url = request.getfixturevalue("es_url") if request.param == "elasticsearch" else None
    backend = open_backend(request.param, tmp_path_factory.mktemp("api"), es_url)
    store = next(backend)
    try:
        yield build_soc(store, soc_rules())
    finally:
        backend.close()


def open_backend(backend: str, folder: Path, es_url: str | None) -> Iterator[Store]:
    if backend == "sqlite":
        from civicsoc.store.sqlite import SqliteStore

        store: Store = SqliteStore(f"sqlite:///{folder / 'api.db'}")
    else:
        from civicsoc.store.elasticsearch import ElasticsearchStore

        assert es_url is not None
        store = ElasticsearchStore(es_url, prefix=f"test-api-{uuid.uuid4().hex[:8]}")
    store.setup()
    try:
        yield store
    finally:
        if backend != "sqlite":
            store.drop()  # type: ignore[attr-defined]
        store.close()
