"""The triage web UI: HTML shells and their static files, served by the API itself (no separate server).

The shells hold no tenant data, so they answer without a token; every record the pages show comes
from the JSON API, called by the browser with the token the sign-in page keeps in ``sessionStorage``
(never a cookie: a cookie would be sent on cross-site requests, and the API does not check origins).
These routes read nothing from the store and stay out of the OpenAPI schema, which describes the API.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
TEMPLATES = Jinja2Templates(directory=UI_DIR / "templates")  # autoescape is on for .html

SECURITY_HEADERS = {
    # No inline script or style anywhere: page settings travel in data- attributes.
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the UI: its path under ``/ui``, template, title, and whether it is in the nav bar."""

    path: str
    template: str
    title: str
    nav: bool = True


PAGES = (
    Page("incidents", "queue.html", "Incident queue"),
    Page("alerts", "alerts.html", "Alerts"),
    Page("rules", "rules.html", "Rules"),
    Page("collectors", "collectors.html", "Collectors"),
    Page("compliance", "compliance.html", "Compliance"),
)
NAV = [(page.path, page.title) for page in PAGES if page.nav]


def _static_files() -> dict[str, Path]:
    """The static files by name: a fixed set read once, so a request can never name a path outside it."""
    folder = UI_DIR / "static"
    return {path.name: path for path in sorted(folder.iterdir()) if path.is_file()}


STATIC = _static_files()
STATIC_VERSION = hashlib.sha256(b"".join(path.read_bytes() for path in STATIC.values())).hexdigest()[:12]
"""Appended to static URLs so a browser never runs an old script against a newer page."""

router = APIRouter(prefix="/ui", include_in_schema=False)


def _render(request: Request, template: str, title: str, current: str, **context: str) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(
        request, template,
        {"title": title, "current": current, "nav": NAV, "static_version": STATIC_VERSION, **context},
    )
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-cache"
    return response


@router.get("")
@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/incidents", status_code=307)


@router.get("/signin", response_class=HTMLResponse)
def sign_in(request: Request) -> HTMLResponse:
    return _render(request, "signin.html", "Sign in", "signin")


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(request: Request, incident_id: str) -> HTMLResponse:
    # The id goes into a data- attribute (escaped by Jinja); the page asks the API whether it exists.
    return _render(request, "incident.html", "Incident", "incidents", incident_id=incident_id)


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    path = STATIC.get(name)
    if path is None:
        raise HTTPException(404, "Not Found")
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if name.endswith(".js"):
        media_type = "text/javascript"  # mimetypes may say application/javascript or nothing, by platform
    response = FileResponse(path, media_type=media_type)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _page_route(page: Page) -> None:
    def show(request: Request) -> HTMLResponse:
        return _render(request, page.template, page.title, page.path)

    router.add_api_route(f"/{page.path}", show, methods=["GET"], response_class=HTMLResponse, name=f"ui_{page.path}")


for _page in PAGES:
    _page_route(_page)
