"""Microsoft Defender Antivirus (``Microsoft-Windows-Windows Defender/Operational``).

Defender names its data with spaces (``Threat Name``, ``Process Name``); Sigma's ``windefend``
rules use the same names without them (``ThreatName``), and pySigma's ``ecs_windows`` pipeline
looks for those under ``winlog.event_data``. So besides the names as written, every spaced name
also appears there without its spaces. ECS fields follow Elastic's ``windows.windows_defender``
pipeline: the detected file, the process that touched it, the user, ``malware`` categorization.
"""

from __future__ import annotations

from typing import Any

from collectors.ecs.windows_spec import EventSpec, put
from collectors.ecs.windows_values import file_fields, process_fields, split_account, text

CHANNEL = "Microsoft-Windows-Windows Defender/Operational"


def defender(data: dict[str, Any], doc: dict[str, Any]) -> None:
    for name in [name for name in data if " " in name]:
        data.setdefault(name.replace(" ", ""), data[name])
    if (path := text(data.get("Path"))) is not None:
        # "file:_C:\\dir\\x.exe" (the detection's resource type, then the path); several are ';'-joined.
        first = path.partition(";")[0]
        first = first.partition(":_")[2] or first
        doc["file"] = file_fields(first)
    if (executable := text(data.get("ProcessName"))) is not None and executable != "Unknown":
        put(doc, "process", process_fields(executable))
    domain, name = split_account(data.get("DetectionUser") or data.get("User"))
    user = {key: value for key, value in (("name", name), ("domain", domain)) if value is not None}
    put(doc, "user", user)
    if (link := text(data.get("FWLink"))) is not None:
        doc["event"]["reference"] = link


SPECS: dict[str, EventSpec] = {
    "1116": EventSpec(("malware",), ("info",), "malware-detected", defender),
    "1117": EventSpec(("malware",), ("info",), "malware-detected", defender),
    "1006": EventSpec(("malware",), ("info",), "malware-detected", defender),
    "1007": EventSpec(("malware",), ("info",), "malware-action-taken", defender),
    "2000": EventSpec(("process",), ("info",), "antivirus-updated", defender),
    "2050": EventSpec(("file",), ("info",), "file-uploaded", defender),
    "5001": EventSpec(("configuration",), ("change",), "real-time-protection-disabled", defender),
    "5007": EventSpec(("configuration",), ("change",), "antivirus-configuration-changed", defender),
}

DEFAULT_FILL = defender
