"""Windows event records → ECS, the way Winlogbeat and Elastic's ingest pipelines shape them.

The input is one record as the ``evtx`` crate renders it in JSON (``{"Event": {"System": …,
"EventData": …}}``). Every record gets the common fields — ``@timestamp`` from
``System.TimeCreated``, ``event.code``/``event.provider``, ``host.name``, ``log.level`` and the
``winlog.*`` block with the raw EventData (or UserData) under ``winlog.event_data`` — and known
(channel, event id) pairs get their ECS categorization and fields from the channel modules
(``windows_security``, ``windows_sysmon``, ``windows_powershell``, ``windows_system``,
``windows_defender``).

``event.module``/``event.dataset`` follow Elastic's integrations: the System integration for the
Security, System and Application logs (``system``/``system.security`` …), the Windows integration
for Sysmon, PowerShell and Defender (``windows``/``windows.sysmon_operational``,
``windows.powershell``, ``windows.powershell_operational``, ``windows.windows_defender``) and
Elastic's custom Windows event log package for any other channel (``winlog``/``winlog.winlog``).

pySigma's ``ecs_windows`` pipeline points Sigma field names at these ECS fields (``Image`` →
``process.executable``, ``TargetObject`` → ``registry.path`` …) and every other field at
``winlog.event_data.<Name>``, which is why the event data is kept under its original names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from collectors.base import Mapped, ParseError
from collectors.ecs import windows_defender, windows_powershell, windows_security, windows_sysmon, windows_system
from collectors.ecs.windows_spec import EventSpec, Fill
from collectors.ecs.windows_values import as_text, guid

DATASETS: dict[str, tuple[str, str]] = {
    windows_security.CHANNEL: ("system", "system.security"),
    windows_system.CHANNEL: ("system", "system.system"),
    "Application": ("system", "system.application"),
    windows_sysmon.CHANNEL: ("windows", "windows.sysmon_operational"),
    windows_powershell.OPERATIONAL_CHANNEL: ("windows", "windows.powershell_operational"),
    windows_powershell.CLASSIC_CHANNEL: ("windows", "windows.powershell"),
    windows_defender.CHANNEL: ("windows", "windows.windows_defender"),
}
OTHER_CHANNELS = ("winlog", "winlog.winlog")
SECURITY = windows_security.CHANNEL

SPECS: dict[tuple[str, str], EventSpec] = {
    **{(windows_security.CHANNEL, code): spec for code, spec in windows_security.SPECS.items()},
    **{(windows_system.CHANNEL, code): spec for code, spec in windows_system.SPECS.items()},
    **{(windows_sysmon.CHANNEL, code): spec for code, spec in windows_sysmon.SPECS.items()},
    **{(windows_powershell.OPERATIONAL_CHANNEL, code): spec
       for code, spec in windows_powershell.OPERATIONAL_SPECS.items()},
    **{(windows_powershell.CLASSIC_CHANNEL, code): spec for code, spec in windows_powershell.CLASSIC_SPECS.items()},
    **{(windows_defender.CHANNEL, code): spec for code, spec in windows_defender.SPECS.items()},
}
"""(channel, event id) → what to add beyond the common fields."""

DEFAULT_FILLS: dict[str, Fill] = {
    windows_security.CHANNEL: windows_security.DEFAULT_FILL,
    windows_defender.CHANNEL: windows_defender.DEFAULT_FILL,
}
"""Channel → filler for its events without an entry in ``SPECS``."""

_LEVEL_NAMES = ("information", "critical", "error", "warning", "information", "verbose")
LEVELS: dict[int | str, str] = {**dict(enumerate(_LEVEL_NAMES)),
                                **{str(number): name for number, name in enumerate(_LEVEL_NAMES)}}
"""System.Level → ``log.level``/``winlog.level``, as Winlogbeat renders them (0, LogAlways, shows as information)."""

_OPCODE_NAMES = {0: "Info", 1: "Start", 2: "Stop", 3: "DCStart", 4: "DCStop", 5: "Extension", 6: "Reply", 7: "Resume",
                 8: "Suspend", 9: "Send", 240: "Receive"}
OPCODES: dict[int | str, str] = {**_OPCODE_NAMES, **{str(n): name for n, name in _OPCODE_NAMES.items()}}
"""The standard (winmeta) opcode names; provider-specific opcodes stay numbers, as there are no
message tables to name them outside Windows."""

STANDARD_KEYWORDS = (
    (0x0001000000000000, "Response Time"),
    (0x0002000000000000, "WDI Context"),
    (0x0004000000000000, "WDI Diag"),
    (0x0008000000000000, "SQM"),
    (0x0010000000000000, "Audit Failure"),
    (0x0020000000000000, "Audit Success"),
    (0x0040000000000000, "Correlation Hint"),
    (0x0080000000000000, "Classic"),
)
"""The standard keyword bits (System.Diagnostics.Eventing.Reader.StandardEventKeywords) and the names
Windows renders for them; Security's success/failure is read from these."""

OUTCOMES = {"Audit Success": "success", "Audit Failure": "failure"}


@dataclass(frozen=True, slots=True)
class ChannelRules:
    """What the mapper knows about one channel, so that a record costs one lookup by channel.

    ``specs`` maps event id → ``EventSpec``; ``default_fill`` serves the channel's other events.
    """

    module: str
    dataset: str
    specs: Mapping[str, EventSpec]
    default_fill: Fill | None = None


CHANNEL_RULES: dict[str | None, ChannelRules] = {
    channel: ChannelRules(module, dataset,
                          {code: spec for (spec_channel, code), spec in SPECS.items() if spec_channel == channel},
                          DEFAULT_FILLS.get(channel))
    for channel, (module, dataset) in DATASETS.items()
}
"""Channel → its dataset, specs and default filler: ``DATASETS``, ``SPECS`` and ``DEFAULT_FILLS`` in one lookup."""

OTHER_CHANNEL_RULES = ChannelRules(*OTHER_CHANNELS, {})


@lru_cache(maxsize=1024)
def keyword_names(mask: str) -> tuple[str, ...]:
    """``0x8020000000000000`` → ("Audit Success",). Cached: a log uses a handful of masks."""
    try:  # the mask is the crate's rendering of a HexInt64; a malformed one has no names
        bits = int(mask, 16)
    except ValueError:
        return ()
    return tuple(name for bit, name in STANDARD_KEYWORDS if bits & bit)


_MEMO_LIMIT = 4096
"""Bound of the per-record memos (``_HEADERS``, ``_DECIMALS``): logs repeat a small set of values,
but hostile input must not grow a memo without end, so a full one is simply cleared."""

_fromisoformat = datetime.fromisoformat


@lru_cache(maxsize=1024)
def _keyword_facts(mask: str) -> tuple[tuple[str, ...], str | None]:
    """A Keywords mask's names and the Security outcome they imply (the first of them that has one)."""
    names = keyword_names(mask)
    return names, next((OUTCOMES[name] for name in names if name in OUTCOMES), None)


@lru_cache(maxsize=256)
def _provider_guid(value: str) -> str | None:
    """Provider GUIDs as Windows renders them; cached, as a log has a handful of providers."""
    return guid(value)


_DECIMALS: dict[int, str] = {}


def _decimal(number: int) -> str:
    """``str(number)``, memoized in ``_DECIMALS`` for the small repeating numbers (event ids, tasks).

    Read inline as ``_DECIMALS.get(n) or _decimal(n)``: the memo's strings keep their hash, so the
    record's header key hashes cheaply, and no new string is made per record.
    """
    text = str(number)
    if len(_DECIMALS) >= _MEMO_LIMIT:
        _DECIMALS.clear()
    _DECIMALS[number] = text
    return text


def _scalar(value: Any) -> str | None:
    """A System value as text: the crate gives numbers, strings, or ``{"#text": …}`` with attributes."""
    if value.__class__ is dict:
        value = value.get("#text")
    if value is None:
        return None
    if value.__class__ is str:
        return value
    return str(value)


def _number(value: Any) -> int | None:
    """An integer System attribute: the crate gives a number, or text for some forwarded records."""
    if value.__class__ is int:
        return value
    if value.__class__ is str and value.isdigit():
        return int(value)
    return None


def _attributes(value: Any) -> dict[str, Any]:
    if value.__class__ is dict:
        attributes = value.get("#attributes")
        if attributes.__class__ is dict:
            return attributes
    return {}


def _unnamed(value: Any) -> str | list[str]:
    """Unnamed ``<Data>`` elements (``{"#text": [...]}``) as one string or a list of strings."""
    if value.__class__ is dict:
        value = value.get("#text", "")
    if value.__class__ is list:
        return [as_text(item) if item.__class__ is not str else item for item in value]
    return as_text(value)


def event_data(event: dict[str, Any]) -> dict[str, Any]:
    """The record's EventData — or its UserData's one element — as {Name: text}, names untouched.

    Values are the text Windows renders (see ``windows_values.as_text``). Unnamed ``<Data>``
    elements keep the name ``Data`` (a list when there are several: Sigma's classic PowerShell
    rules match ``Data``) and also get ``param1``…``paramN``, as Winlogbeat names them (System
    rules match ``param1``). Element attributes (``#attributes``) are not data and are left out.
    """
    data = event.get("EventData")
    if data is None:
        user_data = event.get("UserData")
        if user_data.__class__ is not dict or not user_data:
            return {}
        # UserData holds one provider-defined element (<LogFileCleared>, <EventXML> ...): its children.
        data = next(iter(user_data.values()))
    if data.__class__ is not dict:
        if data is None or data == "":
            return {}
        text_value = as_text(data)
        return {"Data": text_value, "param1": text_value}
    flat = dict(data)  # a C-speed copy; then only the few typed values are rewritten
    flat.pop("#attributes", None)
    for name, value in data.items():
        # Most values are text and this test is all the loop does for them; ``type(value)`` is the
        # interpreter's specialized fast path here, a little cheaper than ``value.__class__``.
        if type(value) is str:
            continue
        kind = type(value)
        if kind is int:  # the commonest typed value (pids, logon types, ports)
            flat[name] = str(value)
        elif name == "Data" and (kind is dict or kind is list):
            unnamed = _unnamed(value)
            flat["Data"] = unnamed
            if unnamed.__class__ is list:
                for position, item in enumerate(unnamed, 1):
                    flat[f"param{position}"] = item
            else:
                flat["param1"] = unnamed
        elif name != "#attributes":
            flat[name] = as_text(value)
    return flat


def parse_system_time(system: dict[str, Any]) -> datetime:
    """``System.TimeCreated@SystemTime`` as an aware UTC datetime (100 ns precision cut to µs)."""
    created = system.get("TimeCreated")
    stamp = _attributes(created).get("SystemTime")
    if stamp.__class__ is not str:
        raise ParseError(f"Event.System.TimeCreated.#attributes.SystemTime: expected an ISO 8601 time, got {stamp!r}")
    return _utc_time(stamp)


def _utc_time(stamp: str) -> datetime:
    try:  # fromisoformat is the parser; failing here means a malformed record, not control flow
        moment = datetime.fromisoformat(stamp)
    except ValueError as exc:
        raise ParseError(f"Event.System.TimeCreated.#attributes.SystemTime: expected an ISO 8601 time, "
                         f"got {stamp!r}") from exc
    if moment.tzinfo is UTC:  # the crate always writes the Z
        return moment
    if moment.tzinfo is None:  # SystemTime is UTC by definition
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """What a record's repeating System values decide: everything but the per-record parts.

    Records of one log repeat their provider, event id, channel, computer, account, level, task,
    opcode, version and keywords; the mapping of those is computed once per combination
    (``_HEADERS``) and each record copies ``winlog``/``event`` (C-speed shallow copies of text
    values) and adds its own record id, process, activity ids and event data.
    """

    winlog: dict[str, Any]
    """``winlog`` fields decided by the header: event_id, channel, provider_name/guid, computer_name, opcode …"""
    event: dict[str, Any]
    """``event`` fields: kind, code, provider, action, outcome."""
    category: tuple[str, ...]
    type: tuple[str, ...]
    keywords: tuple[str, ...]
    host_name: str | None
    level: str | None
    user_sid: str | None
    user_id: str | None
    """``user.id``: the record's UserID, except on Security, whose events name their accounts in the data."""
    fill: Fill | None
    module: str
    dataset: str


_HEADERS: dict[tuple[Any, ...], RecordHeader] = {}


def _record_header(channel: Any, code: str, provider_name: Any, raw_guid: Any, computer: Any, user_sid: Any,
                   opcode: Any, task: Any, level: Any, version: Any, mask: Any) -> RecordHeader:
    """The header mapping for one combination of System values (see ``RecordHeader``)."""
    winlog: dict[str, Any] = {"event_id": code}
    ecs_event: dict[str, Any] = {"kind": "event", "code": code}
    if channel is not None:
        winlog["channel"] = channel
    if provider_name is not None:
        winlog["provider_name"] = provider_name
        ecs_event["provider"] = provider_name
    if raw_guid is not None and (provider_guid := _provider_guid(raw_guid)):
        winlog["provider_guid"] = provider_guid
    if computer is not None:
        winlog["computer_name"] = computer
    if opcode is not None:
        winlog["opcode"] = OPCODES.get(opcode) or _scalar(opcode)
    if task is not None:
        winlog["task"] = task if task.__class__ is str else _scalar(task)
    level_name = None
    if level is not None:
        level_name = LEVELS.get(level) or _scalar(level)
        winlog["level"] = level_name
    if version is not None:
        if version.__class__ is not int:
            version = _number(_scalar(version))
        if version is not None:
            winlog["version"] = version
    keywords: tuple[str, ...] = ()
    keyword_outcome = None
    if mask.__class__ is str:
        keywords, keyword_outcome = _keyword_facts(mask)
    is_security = channel == SECURITY
    rules = CHANNEL_RULES.get(channel, OTHER_CHANNEL_RULES) if channel.__class__ is str else OTHER_CHANNEL_RULES
    spec = rules.specs.get(code)
    category: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    fill = rules.default_fill
    if spec is not None:
        category, kind, fill = spec.category, spec.type, spec.fill
        ecs_event["action"] = spec.action
        if spec.outcome is not None:
            ecs_event["outcome"] = spec.outcome
    if is_security and keyword_outcome is not None and "outcome" not in ecs_event:
        # No filler sets event.outcome, so the keywords' outcome can be decided here.
        ecs_event["outcome"] = keyword_outcome
    return RecordHeader(winlog, ecs_event, category, kind, keywords, computer, level_name, user_sid,
                        None if is_security else user_sid, fill, rules.module, rules.dataset)


def map_windows_record(record: dict[str, Any]) -> Mapped:
    """One EVTX record (the ``evtx`` crate's JSON, parsed) → its ECS fields, time and dataset.

    Raises ``ParseError`` naming the missing or malformed part when the record has no
    ``Event.System``, event id or creation time; everything else is optional and mapped when present.

    This runs for every record, so it is written for speed: the System values that repeat from
    record to record are mapped once per combination (``RecordHeader``), the crate's usual shapes
    (numbers as ``int``, attributes as dicts) are tested first and take no function call, and the
    general conversions (``_scalar``, ``_number``) serve the rest.
    """
    event = record.get("Event") if record.__class__ is dict else None
    if event.__class__ is not dict:
        raise ParseError("expected an object with an 'Event' object (the evtx crate's JSON for one record)")
    system = event.get("System")
    if system.__class__ is not dict:
        raise ParseError("Event.System: expected an object with the record's system properties")
    get = system.get  # bound once: System is read a dozen times

    try:  # the crate's shape, read directly; any other shape takes the general path, which raises clearly
        stamp = get("TimeCreated")["#attributes"]["SystemTime"]
        timestamp = _fromisoformat(stamp)
    except (TypeError, KeyError, ValueError):
        timestamp = parse_system_time(system)
    if timestamp.tzinfo is not UTC:  # the crate always writes the Z; anything else is converted
        timestamp = _utc_time(stamp)

    code = get("EventID")
    if code.__class__ is not str:
        code = (_DECIMALS.get(code) or _decimal(code)) if code.__class__ is int else _scalar(code)
        if code is None:
            raise ParseError("Event.System.EventID: expected the event id")
    provider_name = raw_guid = user_sid = None
    provider = get("Provider")
    if provider.__class__ is dict and (attributes := provider.get("#attributes")).__class__ is dict:
        provider_name = attributes.get("Name")
        raw_guid = attributes.get("Guid")
    security = get("Security")
    if security.__class__ is dict and (attributes := security.get("#attributes")).__class__ is dict:
        user_sid = attributes.get("UserID")
    task = get("Task")
    if task.__class__ is int:
        task = _DECIMALS.get(task) or _decimal(task)
    key = (get("Channel"), code, provider_name, raw_guid, get("Computer"), user_sid, get("Opcode"), task,
           get("Level"), get("Version"), get("Keywords"))
    try:
        header = _HEADERS.get(key)
    except TypeError:  # a System value that is an object (never from the crate): mapped, not memoized
        header = _record_header(*key)
    if header is None:
        header = _record_header(*key)
        if len(_HEADERS) >= _MEMO_LIMIT:
            _HEADERS.clear()
        _HEADERS[key] = header

    winlog = header.winlog.copy()
    ecs_event = header.event.copy()
    doc: dict[str, Any] = {"event": ecs_event, "winlog": winlog}
    if (record_id := get("EventRecordID")) is not None:
        winlog["record_id"] = record_id if record_id.__class__ is str else str(record_id)
    execution = get("Execution")
    if execution.__class__ is dict and (attributes := execution.get("#attributes")).__class__ is dict:
        pid = attributes.get("ProcessID")
        thread = attributes.get("ThreadID")
        if pid.__class__ is int and thread.__class__ is int:  # the usual shape, without the general path
            winlog["process"] = {"pid": pid, "thread": {"id": thread}}
        else:
            process: dict[str, Any] = {}
            if (pid := _number(pid)) is not None:
                process["pid"] = pid
            if (thread := _number(thread)) is not None:
                process["thread"] = {"id": thread}
            if process:
                winlog["process"] = process
    if user_sid is not None:
        winlog["user"] = {"identifier": user_sid}
    correlation = get("Correlation")
    if correlation.__class__ is dict and (attributes := correlation.get("#attributes")).__class__ is dict:
        if (activity := attributes.get("ActivityID")) is not None and (activity := guid(activity)) is not None:
            winlog["activity_id"] = activity
        if ((related := attributes.get("RelatedActivityID")) is not None
                and (related := guid(related)) is not None):
            winlog["related_activity_id"] = related
    if header.keywords:
        winlog["keywords"] = [*header.keywords]
    data = winlog["event_data"] = event_data(event)
    if header.category:
        ecs_event["category"] = [*header.category]
    if header.type:
        ecs_event["type"] = [*header.type]
    if header.host_name is not None:
        doc["host"] = {"name": header.host_name}
    if header.level is not None:
        doc["log"] = {"level": header.level}
    if header.user_id is not None:
        # The account the provider logged the event as (Sysmon: SYSTEM; 7045: the installer), as
        # the Sysmon and PowerShell pipelines copy it. Security events name their accounts in the data.
        doc["user"] = {"id": header.user_id}
    if header.fill is not None:
        header.fill(data, doc)
    return Mapped(timestamp, doc, header.module, header.dataset)

