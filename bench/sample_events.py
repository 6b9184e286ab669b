"""Real Windows events for tests and benchmarks, until the collectors produce their own.

The OTRF Security-Datasets records (JSON lines of Windows Security/Sysmon/PowerShell events, in
``../shared/data/otrf-security-datasets``) are shaped into the ECS layout the EVTX collector will
write — ``winlog.*`` with the raw EventData under ``winlog.event_data``, ``event.code``,
``host.name``, ``message`` — so the store is tested on real field names and values. This is a
fixture builder, not the collector's mapper (that one lives in ``collectors/``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from civicsoc.event import Event, event_id

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OTRF_WINDOWS = SHARED_DATA / "otrf-security-datasets" / "datasets" / "atomic" / "windows"
HEADER_KEYS = {"@timestamp", "TimeCreated", "EventID", "Channel", "Hostname", "SourceName", "Message",
               "ProviderGuid", "Level", "Task", "Keywords", "EventTime", "EventReceivedTime", "port", "host",
               "@version", "tags", "EventType", "SeverityValue", "Severity", "Opcode", "OpcodeValue",
               "RecordNumber", "ExecutionProcessID", "ExecutionThreadID", "Category", "SourceModuleName",
               "SourceModuleType", "Version", "ThreadID", "ProcessID", "ActivityID", "Domain",
               "AccountName", "UserID", "AccountType"}


def otrf_files() -> list[Path]:
    files = sorted(OTRF_WINDOWS.rglob("*.json"))
    if not files:
        raise FileNotFoundError(f"no OTRF datasets under {OTRF_WINDOWS}: is ../shared/data in place?")
    return files


def otrf_to_ecs(record: dict[str, Any]) -> dict[str, Any]:
    event_data = {key: value for key, value in record.items() if key not in HEADER_KEYS}
    code = str(record["EventID"])
    doc: dict[str, Any] = {
        "event": {"code": code, "kind": "event", "module": "windows", "provider": record.get("SourceName")},
        "winlog": {
            "channel": record.get("Channel"),
            "event_id": code,
            "provider_name": record.get("SourceName"),
            "computer_name": record.get("Hostname"),
            "event_data": event_data,
        },
        "host": {"name": record.get("Hostname")},
    }
    if record.get("Message"):
        doc["message"] = record["Message"]
    return doc


def otrf_events(
    tenant: str, count: int | None = None, *, cycle_shift: timedelta = timedelta(seconds=1)
) -> Iterator[Event]:
    """Stream OTRF events as ``Event``s; past the end of the data, start again shifted by
    ``cycle_shift`` (so the copies get new ids and times) until ``count`` events were made."""
    produced = 0
    cycle = 0
    while count is None or produced < count:
        for path in otrf_files():
            with path.open(encoding="utf-8") as lines:
                for number, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    record = json.loads(line)
                    stamp = record.get("@timestamp") or record.get("TimeCreated")
                    if stamp is None:  # a few exports carry only a local EventTime without a zone
                        continue
                    moment = datetime.fromisoformat(stamp)
                    if moment.tzinfo is None:  # some exports drop the zone; the datasets were recorded in UTC
                        moment = moment.replace(tzinfo=UTC)
                    moment += cycle * cycle_shift
                    yield Event.from_ecs(otrf_to_ecs(record), tenant=tenant, timestamp=moment,
                                         id=event_id(tenant, f"{path.name}#{cycle}", number))
                    produced += 1
                    if count is not None and produced >= count:
                        return
        if count is None:
            return
        cycle += 1
