"""Shared fixtures: real stores on both backends.

Elasticsearch tests talk to the node that ``tools/elasticsearch/es start`` runs (or
``CIVICSOC_TEST_ES_URL``). Without one they are skipped on a developer machine, but with
``CI=true`` an unreachable engine fails the run: CI must never pass by skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from civicsoc.store import Store

ES_URL = os.environ.get("CIVICSOC_TEST_ES_URL", "http://127.0.0.1:9200")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _es_problem() -> str | None:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(ES_URL, request_timeout=5, max_retries=0)
    try:
        client.info()
    except Exception as exc:  # any failure means "no usable engine"; the message says which
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


@pytest.fixture(scope="session")
def es_url() -> str:
    problem = _es_problem()
    if problem is not None:
        message = f"Elasticsearch at {ES_URL} is not usable ({problem}); start it with tools/elasticsearch/es start"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return ES_URL


@pytest.fixture
def es_store(es_url: str) -> Iterator[Store]:
    """An ElasticsearchStore on its own index prefix, removed afterwards."""
    from civicsoc.store.elasticsearch import ElasticsearchStore

    prefix = f"test-{uuid.uuid4().hex[:10]}"
    store = ElasticsearchStore(es_url, prefix=prefix)
    store.setup()
    try:
        yield store
    finally:
        store.drop()
        store.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    from civicsoc.store.sqlite import SqliteStore

    store = SqliteStore(f"sqlite:///{tmp_path / 'civicsoc.db'}")
    store.setup()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "elasticsearch"])
def store(request: pytest.FixtureRequest) -> Store:
    """Each conformance test runs once per backend."""
    fixture = "sqlite_store" if request.param == "sqlite" else "es_store"
    return request.getfixturevalue(fixture)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA
