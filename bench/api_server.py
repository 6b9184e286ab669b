"""The app factory ``bench.api`` serves with uvicorn: an import string, so ``--workers 2`` can fork it.

The store comes from the environment (``CIVICSOC_BENCH_STORE``: ``sqlite:///path`` or an
Elasticsearch URL, with ``CIVICSOC_BENCH_PREFIX`` for the index prefix), because uvicorn's worker
processes import the factory by name and take no arguments.

Every response carries ``Server-Timing: app;dur=<ms>``: the time from the request reaching the app to
the response headers leaving it (thread-pool wait included, socket and event-loop queueing not), so
the benchmark can tell service time from queueing at the client.
"""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi import FastAPI

from api.app import create_app
from civicsoc.store import Store

STORE_ENV = "CIVICSOC_BENCH_STORE"
PREFIX_ENV = "CIVICSOC_BENCH_PREFIX"


def open_store(url: str, prefix: str | None) -> Store:
    if url.startswith("sqlite:"):
        from civicsoc.store.sqlite import SqliteStore

        return SqliteStore(url)
    from civicsoc.store.elasticsearch import ElasticsearchStore

    return ElasticsearchStore(url, prefix=prefix or "civicsoc")


class ServerTiming:
    """A pure ASGI middleware (no ``BaseHTTPMiddleware``, which would add its own cost to the figure)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                timing = (b"server-timing", f"app;dur={elapsed:.2f}".encode())
                message["headers"] = [*message.get("headers", []), timing]
            await send(message)

        await self.app(scope, receive, timed_send)


def build_app() -> FastAPI:
    """The real app over the benchmark's store, with the real playbook library (the detail page shows it)."""
    from playbooks.loader import load_playbooks

    store = open_store(os.environ[STORE_ENV], os.environ.get(PREFIX_ENV))
    app = create_app(store, playbooks=load_playbooks())
    app.add_middleware(ServerTiming)
    return app
