"""Prometheus metrics: request counts and latency per route, plus the store's gauges at scrape time."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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
        @app.middleware("http")
        async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            started = time.perf_counter()
            response = await call_next(request)
            route = request.scope.get("route")
            name = getattr(route, "path", "unmatched")  # the template, never the ids: bounded label values
            self.latency.labels(request.method, name).observe(time.perf_counter() - started)
            self.requests.labels(request.method, name, str(response.status_code)).inc()
            return response

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
