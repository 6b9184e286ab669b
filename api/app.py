"""The FastAPI application. Routes stay thin: they validate and call into services and the store."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from civicsoc import __version__
from civicsoc.errors import StoreError
from civicsoc.store import Store


def create_app(store: Store) -> FastAPI:
    app = FastAPI(title="civicsoc", version=__version__)
    app.state.store = store

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """Liveness for load balancers and agency IT: is the store reachable? (No auth.)"""
        try:
            store.ping()
        except StoreError as exc:
            return JSONResponse({"status": "unavailable", "store": store.url, "error": exc.cause}, status_code=503)
        return JSONResponse({"status": "ok", "store": store.url, "version": __version__})

    return app
