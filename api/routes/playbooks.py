"""Playbooks: the library, and their runs on an incident (attach, detach, tick steps)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import Field

from api.deps import IfMatch, Reader, ServicesDep, Triager, etag
from api.schemas import Body
from civicsoc.records import PlaybookRun, StepStatus

router = APIRouter(prefix="/api/v1", tags=["playbooks"])


class AttachIn(Body):
    playbook_id: str = Field(min_length=1)


class StepIn(Body):
    status: StepStatus
    note: str = Field("", max_length=5000)


def _library(services: ServicesDep) -> Any:
    if services.playbooks is None:
        raise HTTPException(404, "no playbooks are loaded on this server")
    return services.playbooks


@router.get("/playbooks")
def list_playbooks(principal: Reader, services: ServicesDep) -> list[dict[str, Any]]:
    """The newest version of every playbook: what it applies to and its steps."""
    return [playbook.to_dict() for playbook in _library(services).latest()]


@router.get("/playbooks/{playbook_id}")
def get_playbook(playbook_id: str, principal: Reader, services: ServicesDep) -> dict[str, Any]:
    return _library(services).get(playbook_id).to_dict()


@router.get("/playbooks/{playbook_id}/cacao")
def get_playbook_cacao(playbook_id: str, principal: Reader, services: ServicesDep,
                       version: str | None = None) -> dict[str, Any]:
    """The playbook as CACAO v2.0 JSON (the OASIS playbook standard) for SOAR tools: the newest version, or
    ``version``. Re-exporting an unchanged playbook gives the same document (stable ids)."""
    from playbooks.cacao import to_cacao

    return to_cacao(_library(services).get(playbook_id, version))


@router.post("/incidents/{incident_id}/playbooks", response_model=PlaybookRun, status_code=201)
def attach_playbook(incident_id: str, body: AttachIn, principal: Triager, services: ServicesDep,
                    response: Response) -> PlaybookRun:
    from playbooks.service import attach

    run = attach(services.store, _library(services), principal.scope, incident_id, body.playbook_id, principal.actor)
    response.headers["ETag"] = etag(run.version)
    return run.record


@router.delete("/incidents/{incident_id}/playbooks/{playbook_id}", response_model=PlaybookRun)
def detach_playbook(incident_id: str, playbook_id: str, principal: Triager, services: ServicesDep) -> PlaybookRun:
    from playbooks.service import detach

    return detach(services.store, principal.scope, incident_id, playbook_id, principal.actor).record


@router.put("/incidents/{incident_id}/playbooks/{playbook_id}/steps/{step_id}", response_model=PlaybookRun)
def set_step(incident_id: str, playbook_id: str, step_id: str, body: StepIn, principal: Triager,
             services: ServicesDep, version: IfMatch, response: Response) -> PlaybookRun:
    """Mark a step todo, done or skipped (a skip needs a note); If-Match is the run's version."""
    from playbooks.service import set_step as set_run_step

    services.store.incidents.get(principal.scope, incident_id)
    run = set_run_step(services.store, principal.scope, PlaybookRun.id_for(incident_id, playbook_id), step_id,
                       body.status, body.note, principal.actor, expected_version=version)
    response.headers["ETag"] = etag(run.version)
    return run.record
