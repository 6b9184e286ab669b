"""The System channel: service installation and state (Service Control Manager) and log clearing."""

from __future__ import annotations

from typing import Any

from collectors.ecs.windows_spec import EventSpec, put
from collectors.ecs.windows_values import text, user_fields

CHANNEL = "System"


def service_installed(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """7045: ServiceName → ``service.name`` (pySigma's mapping), ServiceType as Windows words it.

    ImagePath and AccountName stay in ``winlog.event_data``: ECS has no field for a service's
    binary, and AccountName is the service's run-as account, not the person who installed it
    (that one is ``user.id``, from the record's Security UserID).
    """
    service = {}
    if (name := text(data.get("ServiceName"))) is not None:
        service["name"] = name
    if (kind := text(data.get("ServiceType"))) is not None:
        service["type"] = kind
    put(doc, "service", service)


def service_state(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """7036 ("The %1 service entered the %2 state."): the service's display name and state."""
    service = {}
    if (name := text(data.get("param1"))) is not None:
        service["name"] = name
    if (state := text(data.get("param2"))) is not None:
        service["state"] = state
    put(doc, "service", service)


def start_type_changed(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """7040 ("The start type of the %1 service was changed from %2 to %3.")."""
    if (name := text(data.get("param1"))) is not None:
        put(doc, "service", {"name": name})


def log_cleared(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """104: who cleared which log (UserData LogFileCleared, flattened into the event data)."""
    put(doc, "user", user_fields(None, data.get("SubjectUserName"), data.get("SubjectDomainName")))


SPECS: dict[str, EventSpec] = {
    "104": EventSpec(("iam",), ("admin", "change"), "audit-log-cleared", log_cleared),
    "7036": EventSpec(("process",), ("change",), "service-state-changed", service_state),
    "7040": EventSpec(("configuration",), ("change",), "service-start-type-changed", start_type_changed),
    "7045": EventSpec(("iam", "configuration"), ("admin", "change"), "service-installed", service_installed),
}
