"""Prometheus metrics: request counts and latency per route, plus the store's gauges at scrape time."""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from civicsoc.records import CollectorStatus, IncidentStatus
from civicsoc.store import RecordQuery, Scope, Store


class ApiMetrics:
    """One registry per app (tests build many apps; the global registry would refuse duplicates)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("civicsoc_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("civicsoc_http_request_seconds", "HTTP request latency", ["method", "route"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.incidents = Gauge("civicsoc_incidents", "Incidents by status", ["status"], registry=self.registry)
        self.alerts = Gauge("civicsoc_alerts", "Alerts by status", ["status"], registry=self.registry)
        self.collector_events = Gauge("civicsoc_collector_events_total", "Events read, per collector heartbeat",
                                      ["tenant", "collector"], registry=self.registry)
        self.collector_errors = Gauge("civicsoc_collector_errors_total", "Errors, per collector heartbeat",
                                      ["tenant", "collector"], registry=self.registry)
        self.collector_dead_letters = Gauge("civicsoc_collector_dead_letters_total",
                                            "Dead letters, per collector heartbeat", ["tenant", "collector"],
                                            registry=self.registry)

    def install(self, app: FastAPI) -> None:
        app.add_middleware(RequestMetrics, metrics=self)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route).observe(seconds)
        self.requests.labels(method, route, str(status)).inc()

    def render(self, store: Store) -> Response:
        everything = Scope.all()
        counts = {b.key: b.count for b in store.incidents.count_by(everything, RecordQuery(), "status")}
        for status in IncidentStatus:
            self.incidents.labels(status.value).set(counts.get(status.value, 0))
        for bucket in store.alerts.count_by(everything, RecordQuery(), "status"):
            self.alerts.labels(bucket.key).set(bucket.count)
        page = store.records(CollectorStatus).list(everything, RecordQuery(sort="name", limit=5000))
        for item in page.items:
            status = item.record
            self.collector_events.labels(status.tenant, status.name).set(status.events_total)
            self.collector_errors.labels(status.tenant, status.name).set(status.errors)
            self.collector_dead_letters.labels(status.tenant, status.name).set(status.dead_letters)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Counts and times every HTTP request, labelled by route template (never the ids: bounded labels).

    A pure ASGI middleware rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
    runs each request in an extra task and passes the response body through a memory stream, a cost
    paid on every request for two numbers. A request that fails with an exception counts as a 500.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # the router sets it when a route matched
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)
