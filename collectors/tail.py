"""Log files, read once (``read_lines``) or followed as they grow and rotate (``Tailer``).

A file's identity is a fingerprint of its first line, not its name or inode:

- rename + create rotation: the renamed file keeps its first line, so reading goes on where it
  stopped (the handle stays open across the rename; a pattern such as ``auth.log*`` also finds it
  again after a restart), and the new file has a new first line, so it is read from the start;
- copytruncate: the copy (``auth.log.1``) has the old first line and continues the old position;
  the truncated original gets new content and a new identity;
- a restart resumes every identity from its committed checkpoint.

Event ids hash the identity and the line's byte offset, so reading a line twice (after a crash,
or when two names hold the same content) stores it once. A file whose first line is not complete
yet is left alone until it is. Two different files that begin with the very same line are taken
for one; logs start with a timestamp, so that needs a file copied by hand.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from collectors.base import Checkpoint, CollectorContext, DeadLetter, Item, LineParser, ParseError, Sink

log = logging.getLogger(__name__)

FINGERPRINT_LIMIT = 4096
DEFAULT_MAX_LINE = 1 << 20
INVALID_UTF8_TAG = "invalid_utf8"


def file_identity(handle: BinaryIO) -> str | None:
    """``file:<hash of the first line>``, or ``None`` while the first line is incomplete."""
    handle.seek(0)
    first = handle.readline(FINGERPRINT_LIMIT)
    if not first.endswith(b"\n") and len(first) < FINGERPRINT_LIMIT:
        return None
    return "file:" + hashlib.blake2b(first, digest_size=12).hexdigest()


def read_lines(
    handle: BinaryIO,
    *,
    name: str,
    identity: str,
    parser: LineParser,
    context: CollectorContext,
    start: int = 0,
    final: bool = False,
    max_line: int = DEFAULT_MAX_LINE,
) -> Iterator[Item]:
    """Items for every complete line from byte ``start`` on.

    A last line without a line break is left for later unless ``final`` (the file is read once
    and will not grow). Lines longer than ``max_line`` bytes are dead-lettered, not split.
    """
    handle.seek(start)
    offset = start
    number = None  # line numbers are known only when reading from the start
    if start == 0:
        number = 0
    while True:
        raw = handle.readline(max_line + 1)
        if not raw:
            return
        if not raw.endswith(b"\n"):
            if len(raw) > max_line:
                skipped = _skip_to_line_end(handle)
                end = offset + len(raw) + skipped
                if number is not None:
                    number += 1
                yield Item(DeadLetter.of(_where(name, number, offset),
                                         f"line longer than {max_line} bytes ({len(raw) + skipped} bytes); "
                                         "raise max_line_bytes if such lines are expected", raw[:4096]),
                           Checkpoint(identity, end))
                offset = end
                continue
            if not final:
                return  # an incomplete line: the writer is still at it
        end = offset + len(raw)
        if number is not None:
            number += 1
        yield _parse(raw, parser, context, name=name, identity=identity, offset=offset, end=end, number=number)
        offset = end


def _skip_to_line_end(handle: BinaryIO) -> int:
    skipped = 0
    while True:
        chunk = handle.readline(1 << 16)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def _where(name: str, number: int | None, offset: int) -> str:
    return f"{name}:{number}" if number is not None else f"{name}@{offset}"


def _parse(raw: bytes, parser: LineParser, context: CollectorContext, *, name: str, identity: str, offset: int,
           end: int, number: int | None) -> Item:
    checkpoint = Checkpoint(identity, end)
    body = raw.rstrip(b"\r\n")
    try:
        text = body.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        text = body.decode("utf-8", "replace")  # keep the event; the tag says it was repaired
        valid = False
    if not text.strip():
        return Item(DeadLetter.of(_where(name, number, offset), "empty line", raw), checkpoint)
    try:
        mapped = parser(text)
    except ParseError as exc:
        return Item(DeadLetter.of(_where(name, number, offset), str(exc), body), checkpoint)
    if not valid:
        mapped.fields.setdefault("tags", []).append(INVALID_UTF8_TAG)
    mapped.fields.setdefault("log", {}).setdefault("file", {})["path"] = name
    mapped.fields["log"]["offset"] = offset
    event = context.event(mapped.fields, timestamp=mapped.timestamp, source=identity, position=offset,
                          module=mapped.module, dataset=mapped.dataset, original=text)
    return Item(event, checkpoint)


def read_file_once(path: Path, parser: LineParser, context: CollectorContext, *,
                   max_line: int = DEFAULT_MAX_LINE) -> Iterator[Item]:
    """Every line of a file that will not grow (``civicsoc ingest``)."""
    with path.open("rb") as handle:
        identity = file_identity(handle)
        if identity is None:  # one line without a break: the first line is the whole file
            handle.seek(0)
            identity = "file:" + hashlib.blake2b(handle.read(FINGERPRINT_LIMIT), digest_size=12).hexdigest()
        yield from read_lines(handle, name=str(path), identity=identity, parser=parser, context=context,
                              final=True, max_line=max_line)


@dataclass
class _OpenFile:
    handle: BinaryIO
    path: str
    identity: str
    position: int
    last_read: float = field(default_factory=time.monotonic)


class Tailer:
    """Follows the files matching ``patterns`` until ``stop`` is set, handing items to ``sink``."""

    def __init__(
        self,
        patterns: list[str],
        parser: LineParser,
        context: CollectorContext,
        *,
        committed: Callable[[str], int] | None = None,
        poll_interval: float = 1.0,
        close_inactive: float = 300.0,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        self.patterns = patterns
        self.parser = parser
        self.context = context
        self.committed = committed or (lambda _identity: 0)
        self.poll_interval = poll_interval
        self.close_inactive = close_inactive
        self.max_line = max_line
        self._open: dict[tuple[int, int], _OpenFile] = {}
        self._progress: dict[str, int] = {}  # read (not necessarily stored) position per identity

    def run(self, sink: Sink, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.poll(sink)
                stop.wait(self.poll_interval)
            self.poll(sink)  # one last read, so a drain gets what was written before the stop
        finally:
            for entry in self._open.values():
                entry.handle.close()
            self._open.clear()

    def poll(self, sink: Sink) -> None:
        """Read everything new once: open files first (renamed ones included), then new names."""
        seen: set[tuple[int, int]] = set()
        for pattern in self.patterns:
            for path in sorted(glob.glob(pattern)):
                try:
                    stat = os.stat(path)
                except FileNotFoundError:
                    continue
                key = (stat.st_dev, stat.st_ino)
                seen.add(key)
                if key not in self._open:
                    self._open_file(path, key)
                elif self._open[key].path != path:
                    self._open[key].path = path
        for key, entry in list(self._open.items()):
            self._read(entry, sink)
            idle = time.monotonic() - entry.last_read
            if key not in seen or idle > self.close_inactive:
                entry.handle.close()
                del self._open[key]

    def _open_file(self, path: str, key: tuple[int, int]) -> None:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - kept open across polls on purpose
        except OSError as exc:
            log.warning("cannot open %s: %s", path, exc)
            return
        identity = file_identity(handle)
        if identity is None:
            handle.close()  # first line incomplete: look again next poll
            return
        start = max(self._progress.get(identity, 0), self.committed(identity))
        self._open[key] = _OpenFile(handle, path, identity, start)

    def _read(self, entry: _OpenFile, sink: Sink) -> None:
        size = os.fstat(entry.handle.fileno()).st_size
        if size < entry.position:  # truncated in place (copytruncate): the content is new
            identity = file_identity(entry.handle)
            if identity is None:
                return
            if identity == entry.identity:
                entry.position = 0  # rewritten with the very same first line: read it all again
            else:
                entry.position = max(self._progress.get(identity, 0), self.committed(identity))
            entry.identity = identity
        if size == entry.position:
            return
        for item in read_lines(entry.handle, name=entry.path, identity=entry.identity, parser=self.parser,
                               context=self.context, start=entry.position, max_line=self.max_line):
            sink(item)
            assert item.checkpoint is not None
            entry.position = item.checkpoint.offset
        self._progress[entry.identity] = max(self._progress.get(entry.identity, 0), entry.position)
        entry.last_read = time.monotonic()
