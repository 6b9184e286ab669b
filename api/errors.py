"""Domain errors → HTTP answers, in one place so every route answers alike."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from civicsoc.errors import (
    AlreadyExists,
    CivicsocError,
    InvalidQuery,
    NotFound,
    StoreError,
    StoreUnavailable,
    TenantDenied,
    VersionConflict,
)
from civicsoc.triage import WorkflowError
from playbooks.model import PlaybookError


def _answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OverflowError)
    async def out_of_range(request: Request, exc: OverflowError) -> JSONResponse:
        # Times or numbers at the edge of their range (year 1 with a positive offset...): the caller's input.
        return _answer(422, f"a value is out of range ({exc})")

    @app.exception_handler(ValidationError)
    async def invalid_value(request: Request, exc: ValidationError) -> JSONResponse:
        # A value that passed the request schema but not a domain record's rules (e.g. a tenant name).
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _answer(422, f"{exc.title}: {problems}")

    @app.exception_handler(CivicsocError)
    async def civicsoc_error(request: Request, exc: CivicsocError) -> JSONResponse:
        if isinstance(exc, NotFound):
            return _answer(404, str(exc))
        if isinstance(exc, TenantDenied):
            # Another tenant's data must look absent, not forbidden: a 403 would confirm it exists.
            return _answer(404, f"{exc.collection}: not found")
        if isinstance(exc, VersionConflict):
            return _answer(412, str(exc))
        if isinstance(exc, AlreadyExists):
            return _answer(409, str(exc))
        if isinstance(exc, WorkflowError | PlaybookError):
            return _answer(409, str(exc))
        if isinstance(exc, InvalidQuery):
            return _answer(422, str(exc))
        if isinstance(exc, StoreUnavailable):
            return _answer(503, "the store is unavailable")
        if isinstance(exc, StoreError):
            return _answer(502, "the store refused the request")
        return _answer(400, str(exc))
