"""PowerShell: the Operational channel (4103/4104/4105/4106) and classic "Windows PowerShell" (400-800).

Follows Winlogbeat's ``powershell`` module (``x-pack/winlogbeat/module/powershell/ingest``):
ScriptBlockText → ``powershell.file.script_block_text``, the ``Key = Value`` lines of 4103's
ContextInfo and of the classic events' detail block → ``process.command_line`` (HostApplication),
``powershell.engine.version`` and friends. pySigma's ``ecs_windows`` pipeline also maps 4103's
``Payload`` to ``powershell.file.script_block_text``, so that is where 4103's payload goes too.
"""

from __future__ import annotations

from typing import Any

from collectors.ecs.windows_spec import EventSpec, Fill
from collectors.ecs.windows_values import file_fields, split_account, text, to_int

OPERATIONAL_CHANNEL = "Microsoft-Windows-PowerShell/Operational"
CLASSIC_CHANNEL = "Windows PowerShell"

# Detail-line keys (spaces removed: 4103 writes "Host Application", the classic events "HostApplication")
# → where the value goes. Keys in both spellings of the id suffix (HostID/HostId ...).
DETAIL_FIELDS: dict[str, tuple[str, ...]] = {
    "HostApplication": ("process", "command_line"),
    "HostName": ("process", "title"),
    "HostID": ("process", "entity_id"),
    "HostId": ("process", "entity_id"),
    "HostVersion": ("powershell", "process", "executable_version"),
    "EngineVersion": ("powershell", "engine", "version"),
    "NewEngineState": ("powershell", "engine", "new_state"),
    "PreviousEngineState": ("powershell", "engine", "previous_state"),
    "RunspaceID": ("powershell", "runspace_id"),
    "RunspaceId": ("powershell", "runspace_id"),
    "PipelineID": ("powershell", "pipeline_id"),
    "PipelineId": ("powershell", "pipeline_id"),
    "CommandName": ("powershell", "command", "name"),
    "CommandType": ("powershell", "command", "type"),
    "CommandPath": ("powershell", "command", "path"),
    "CommandLine": ("powershell", "command", "value"),
    "ShellID": ("powershell", "id"),
    "ProviderName": ("powershell", "provider", "name"),
    "NewProviderState": ("powershell", "provider", "new_state"),
}


def detail_lines(block: str) -> dict[str, str]:
    """``Key = Value`` / ``\\tKey=Value`` lines → {Key-without-spaces: value}; the first one wins.

    Values of the last keys (CommandLine, a script) may span lines; a later line that happens to
    look like ``Key=Value`` cannot override a key already read.
    """
    found: dict[str, str] = {}
    for line in block.splitlines():
        key, separator, value = line.partition("=")
        if not separator:
            continue
        key = key.strip().replace(" ", "")
        if key and key.isalnum() and key not in found:
            found[key] = value.strip()
    return found


def apply_details(details: dict[str, str], doc: dict[str, Any]) -> None:
    """Copy the known detail keys into ECS; sequence numbers and users get their own fields."""
    for key, value in details.items():
        path = DETAIL_FIELDS.get(key)
        if path is None or not value:
            continue
        node = doc
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    if (sequence := to_int(details.get("SequenceNumber"))) is not None:
        doc.setdefault("event", {})["sequence"] = sequence
    if (script := text(details.get("ScriptName"))) is not None:
        doc["file"] = file_fields(script)
    user = details.get("User") or details.get("UserId")
    if user:
        domain, name = split_account(user)
        fields = {}
        if name is not None:
            fields["name"] = name
        if domain is not None:
            fields["domain"] = domain
        if fields:
            doc.setdefault("user", {}).update(fields)
    if (connected := details.get("ConnectedUser")):
        domain, name = split_account(connected)
        source_user = {key: value for key, value in (("name", name), ("domain", domain)) if value is not None}
        if source_user:
            doc["source"] = {"user": source_user}


def script_block(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """4104: the script block (one part of MessageTotal), its id and the script's path."""
    powershell: dict[str, Any] = {}
    file: dict[str, Any] = {}
    if (block := data.get("ScriptBlockText")) is not None and block != "":
        file["script_block_text"] = block
    if (block_id := text(data.get("ScriptBlockId"))) is not None:
        file["script_block_id"] = block_id
    if file:
        powershell["file"] = file
    if (number := to_int(data.get("MessageNumber"))) is not None:
        powershell["sequence"] = number
    if (total := to_int(data.get("MessageTotal"))) is not None:
        powershell["total"] = total
    if powershell:
        doc["powershell"] = powershell
    if (path := text(data.get("Path"))) is not None:
        doc["file"] = file_fields(path)


def module_logging(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """4103: ContextInfo's detail lines, and Payload where pySigma looks for it."""
    context = data.get("ContextInfo")
    if context:
        apply_details(detail_lines(context), doc)
    if (payload := data.get("Payload")):
        doc.setdefault("powershell", {}).setdefault("file", {})["script_block_text"] = payload


def command_lifecycle(data: dict[str, Any], doc: dict[str, Any]) -> None:
    """4105/4106 (script block start/stop): the block and runspace ids."""
    powershell: dict[str, Any] = {}
    if (block_id := text(data.get("ScriptBlockId"))) is not None:
        powershell["file"] = {"script_block_id": block_id}
    if (runspace := text(data.get("RunspaceId"))) is not None:
        powershell["runspace_id"] = runspace
    if powershell:
        doc["powershell"] = powershell


def classic_details(position: int) -> Fill:
    """A filler for a classic event whose detail block is the ``position``-th unnamed Data element
    (param3 for 400/403/600, param2 for 800, as Winlogbeat reads them)."""
    parameter = f"param{position}"

    def fill(data: dict[str, Any], doc: dict[str, Any]) -> None:
        block = data.get(parameter)
        if block:
            apply_details(detail_lines(block), doc)

    return fill


_PROCESS = ("process",)

OPERATIONAL_SPECS: dict[str, EventSpec] = {
    "4103": EventSpec(_PROCESS, ("info",), "Executing Pipeline", module_logging),
    "4104": EventSpec(_PROCESS, ("info",), "Execute a Remote Command", script_block),
    "4105": EventSpec(_PROCESS, ("start",), "Starting Command", command_lifecycle),
    "4106": EventSpec(_PROCESS, ("end",), "Stopping Command", command_lifecycle),
}

CLASSIC_SPECS: dict[str, EventSpec] = {
    "400": EventSpec(_PROCESS, ("start",), "Engine Lifecycle", classic_details(3)),
    "403": EventSpec(_PROCESS, ("end",), "Engine Lifecycle", classic_details(3)),
    "600": EventSpec(_PROCESS, ("info",), "Provider Lifecycle", classic_details(3)),
    "800": EventSpec(_PROCESS, ("info",), "Pipeline Execution Details", classic_details(2)),
}
