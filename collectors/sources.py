"""The kinds of input ``civicsoc ingest`` and ``civicsoc collect`` read, and how a file's kind is told.

Each kind maps to a reader ``(path, context) -> Iterator[Item]``. Readers are imported when first
used, so a machine without tshark can still ingest EVTX and logs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Literal, get_args

from civicsoc.errors import CivicsocError
from collectors.base import CollectorContext, DeadLetter, Item, LineParser, ParseError
from collectors.tail import read_file_once

FileKind = Literal["evtx", "pcap", "syslog", "auth", "audit", "access", "ndjson"]
FILE_KINDS: tuple[str, ...] = get_args(FileKind)

EVTX_MAGIC = b"ElfFile\x00"
PCAP_MAGICS = (
    b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4",  # pcap, microsecond, both byte orders
    b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",  # pcap, nanosecond
    b"\x0a\x0d\x0d\x0a",  # pcapng section header
)
AUDIT_LINE = re.compile(r"^(node=\S+ )?type=\w+ msg=audit\(\d+\.\d+:\d+\)")
ACCESS_LINE = re.compile(r'^"?\S+ \S+ \S+ \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "')
SYSLOG_LINE = re.compile(
    r"^(<\d{1,3}>)?"  # a PRI, when the file holds network messages
    r"(\w{3} [ \d]\d \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T\S+|1 \d{4}-\d{2}-\d{2}T\S+) "  # RFC 3164 / ISO / RFC 5424
)
AUTH_PROGRAMS = re.compile(r" (sshd|sudo|su|login|systemd-logind|useradd|usermod|groupadd|passwd|chpasswd)[\[:(]")


def detect_kind(path: Path) -> FileKind:
    """Tell a file's kind from its magic bytes, else from its first lines.

    Raises ``ParseError`` naming the file and the kinds it could be when nothing fits.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(8192)
    except OSError as exc:
        raise ParseError(f"{path}: cannot be read ({exc.strerror})") from None
    if head.startswith(EVTX_MAGIC):
        return "evtx"
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    lines = [line for line in head.decode("utf-8", "replace").splitlines()[:20] if line.strip()]
    if not lines:
        raise ParseError(f"{path}: empty, or no line in its first 8 KiB; give --type to read it anyway")
    first = lines[0].lstrip("\ufeff")
    if first.startswith("{"):
        return "ndjson"
    if AUDIT_LINE.match(first):
        return "audit"
    if ACCESS_LINE.match(first):
        return "access"
    if SYSLOG_LINE.match(first):
        return "auth" if any(AUTH_PROGRAMS.search(line) for line in lines) else "syslog"
    raise ParseError(f"{path}: not a kind civicsoc knows (expected EVTX, pcap/pcapng, syslog/auth, auditd, "
                     f"access log or NDJSON); first line: {first[:80]!r}")


def line_parser(kind: FileKind, *, now: datetime | None = None) -> LineParser:
    """The parser for a line-based kind (RFC 3164 timestamps get their year from ``now``)."""
    moment = now or datetime.now(UTC)
    if kind in ("syslog", "auth"):
        from collectors.ecs.syslog import parse_syslog_line

        return partial(parse_syslog_line, now=moment)
    if kind == "audit":
        from collectors.ecs.auditd import parse_audit_line

        return parse_audit_line
    if kind == "access":
        from collectors.ecs.access import parse_access_line

        return parse_access_line
    if kind == "ndjson":
        from collectors.ecs.ndjson import parse_ndjson_line

        return parse_ndjson_line
    raise ValueError(f"{kind} is not a line-based kind")


def reader(kind: FileKind) -> Callable[[Path, CollectorContext], Iterator[Item]]:
    if kind == "evtx":
        from collectors.evtx import read_evtx

        return read_evtx
    if kind == "pcap":
        from collectors.pcap import read_pcap

        return read_pcap

    def read_lines(path: Path, context: CollectorContext) -> Iterator[Item]:
        return read_file_once(path, line_parser(kind), context)

    return read_lines


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given, and the files inside given directories (recursively, sorted, hidden ones skipped)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                                and not any(part.startswith(".") for part in p.relative_to(path).parts)))
        else:
            found.append(path)
    return found


@dataclass
class FileReport:
    """What ``read_files`` did with each file: read, skipped (of no known kind, inside a given folder),
    or failed (named explicitly but of no known kind, or unreadable as a whole)."""

    files: int = 0
    events: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def read_files(
    paths: list[Path],
    context: CollectorContext,
    report: FileReport,
    *,
    kind: FileKind | None = None,
    progress: Callable[[Path, int], None] | None = None,
    progress_every: int = 1000,
) -> Iterator[tuple[Path, Item]]:
    """Every item of every file under ``paths``, for one-shot reads (``ingest`` and ``hunt``).

    A file that cannot be read is reported and the others go on; what a file yielded before it
    failed is kept.
    """
    explicit = {path for path in paths if not path.is_dir()}
    for path in expand_paths(paths):
        try:
            file_kind = kind or detect_kind(path)
        except CivicsocError as exc:
            (report.failed if path in explicit else report.skipped).append((str(path), str(exc)))
            continue
        count = 0
        try:
            for item in reader(file_kind)(path, context):
                if not isinstance(item.value, DeadLetter):
                    count += 1
                    if progress is not None and count % progress_every == 0:
                        progress(path, count)
                yield path, item
        except CivicsocError as exc:
            report.failed.append((str(path), str(exc)))
        report.files += 1
        report.events += count
        if progress is not None:
            progress(path, count)
