"""Windows .evtx files → ECS events, streamed one record at a time.

The Rust ``evtx`` crate (``PyEvtxParser``) does the decoding; its JSON for a record is parsed with
``orjson`` and handed to the pure mapper ``collectors.ecs.windows.map_windows_record``. JSON rather
than the crate's XML because the mapper wants a structure: the crate's JSON plus ``orjson.loads``
runs about four times as fast as its XML plus ``ElementTree`` (and a few of its XML renderings are
not well-formed); ``python -m bench.ingest`` measures both.

Two numbers identify a record. An event's id hashes ``evtx:<computer>:<channel>`` with the
record's own ``EventRecordID`` and creation time, so the same Windows record read from two
different exports is stored once (an export of filtered events renumbers the record headers but
keeps ``EventRecordID``). A checkpoint's offset is the file's record number (its record headers'
count) to resume from: every record with a smaller number has been yielded. In a circular log
that wrapped, the file holds newer chunks before older ones; the offset then stays at the oldest
record not yet read, so a resume re-reads (harmlessly, same ids) rather than skips.

Corrupt input never stops the reader: each chunk or record the crate cannot decode, and a chunk
cut off at the end of the file (which the crate skips without a word), becomes a ``DeadLetter``
naming the file and the chunk or record, and reading goes on with the next one.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
from evtx import PyEvtxParser

from collectors.base import Checkpoint, CollectorContext, DeadLetter, Item, ParseError
from collectors.ecs.windows import map_windows_record

EVTX_MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
FILE_HEADER_SIZE = 4096
CHUNK_SIZE = 65536
_CHUNK_RECORD_IDS = struct.Struct("<QQ")  # first and last event record id, at offset 24 of a chunk header


def is_evtx(path: Path | str) -> bool:
    """Whether the file starts with the EVTX magic ``ElfFile\\0``."""
    with open(path, "rb") as handle:
        return handle.read(len(EVTX_MAGIC)) == EVTX_MAGIC


def source_identity(path: Path | str) -> str:
    """The checkpoint source of an .evtx file: its absolute path.

    Offsets are record ids, which Windows keeps across exports and renames of a log, so resuming a
    re-exported file at the same path is still right.
    """
    return f"evtx:{Path(path).resolve()}"


@dataclass(frozen=True, slots=True)
class ChunkRange:
    """The record ids a chunk header claims: what the resume offset and truncation checks need."""

    number: int
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Layout:
    """What the file and chunk headers say, read before the crate starts.

    Read by hand (a few ``struct`` unpacks of 512-byte headers) because the crate exposes neither
    its chunk headers nor the partial chunk it skips at a truncated file's end.
    """

    chunks: tuple[ChunkRange, ...]
    """Chunks with a valid header, in file order."""
    truncated_chunk: int | None
    """The number of a chunk cut off by the end of the file, if there is one."""
    truncated_bytes: int = 0

    @property
    def in_record_order(self) -> bool:
        firsts = [chunk.first for chunk in self.chunks]
        return all(earlier < later for earlier, later in pairwise(firsts))


def read_layout(path: Path) -> Layout:
    chunks: list[ChunkRange] = []
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        number = 0
        while (start := FILE_HEADER_SIZE + number * CHUNK_SIZE) < size:
            handle.seek(start)
            header = handle.read(40)
            if header.startswith(CHUNK_MAGIC):
                if start + CHUNK_SIZE > size:
                    return Layout(tuple(chunks), number, size - start)
                first, last = _CHUNK_RECORD_IDS.unpack_from(header, 24)
                chunks.append(ChunkRange(number, first, last))
            number += 1
    return Layout(tuple(chunks), None)


class ResumeOffsets:
    """The checkpoint offset after each record: the smallest record id not yet yielded.

    In file order ids rise, so that is the record's id + 1. In a wrapped circular log the newer
    chunks come first; while reading them the offset stays at the first id of the oldest chunk
    still ahead, so a restart re-reads them instead of skipping the older ones.
    """

    def __init__(self, layout: Layout) -> None:
        self._ordered = layout.in_record_order
        self._chunks = layout.chunks
        lowest_ahead: list[int | None] = [None] * len(self._chunks)
        running: int | None = None
        for index in range(len(self._chunks) - 1, -1, -1):
            lowest_ahead[index] = running
            first = self._chunks[index].first
            running = first if running is None else min(running, first)
        self._lowest_ahead = lowest_ahead
        self._lowest = running if running is not None else 0
        self._current = 0

    def after(self, record_id: int) -> int:
        if self._ordered:
            return record_id + 1
        chunks = self._chunks
        index = self._current
        while index < len(chunks) and not (chunks[index].first <= record_id <= chunks[index].last):
            index += 1
        if index == len(chunks):
            # The headers do not account for this record (a dirty header): resume from the start.
            return self._lowest
        self._current = index
        ahead = self._lowest_ahead[index]
        return record_id + 1 if ahead is None else min(record_id + 1, ahead)


def _failure_location(path: Path, message: str, last_record_id: int | None) -> tuple[str, int | None]:
    """Where the crate failed, from its message: ``Failed to parse chunk number 6: …`` → chunk 6."""
    for prefix, kind in (("Failed to parse chunk number ", "chunk"), ("Failed to parse record number ", "record")):
        if message.startswith(prefix):
            number = message[len(prefix):].partition(":")[0]
            if number.isdigit():
                return f"{path} {kind} {number}", int(number) if kind == "chunk" else None
    if last_record_id is None:
        return f"{path} before the first record", None
    return f"{path} after record {last_record_id}", None


def _chunk_bytes(path: Path, number: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(FILE_HEADER_SIZE + number * CHUNK_SIZE)
        return handle.read(CHUNK_SIZE)


def read_evtx(path: Path, context: CollectorContext, *, start_record: int = 0) -> Iterator[Item]:
    """Yield one ``Item`` per record of an .evtx file, from record number ``start_record`` on.

    ``start_record`` is a checkpoint's ``offset`` (0 reads everything). Events carry
    ``event.original`` (the crate's JSON of the record) when the context keeps originals. Raises
    ``ParseError`` if the file is not EVTX at all; everything after that point that cannot be read
    becomes a ``DeadLetter`` and the reader continues.
    """
    path = Path(path)
    with path.open("rb") as handle:
        magic = handle.read(len(EVTX_MAGIC))
    if magic != EVTX_MAGIC:
        raise ParseError(f"{path}: not an EVTX file: expected the magic {EVTX_MAGIC!r} at offset 0, found {magic!r}")
    try:
        parser = PyEvtxParser(str(path))
    except OSError as exc:  # the crate's file-header check; a header it cannot read is not a log
        raise ParseError(f"{path}: not a readable EVTX file: {exc}") from exc
    layout = read_layout(path)
    offsets = ResumeOffsets(layout)
    identity = source_identity(path)
    records = parser.records_json()
    checkpoint: Checkpoint | None = None
    last_record_id: int | None = None
    while True:
        try:
            raw = next(records)
        except StopIteration:
            break
        except RuntimeError as exc:  # a bad chunk or record: the iterator itself goes on with the next
            message = str(exc)
            location, chunk = _failure_location(path, message, last_record_id)
            evidence = _chunk_bytes(path, chunk) if chunk is not None else b""
            yield Item(DeadLetter.of(location, f"the evtx parser could not decode it: {message}", evidence),
                       checkpoint)
            continue
        record_id: int = raw["event_record_id"]
        last_record_id = record_id
        if record_id < start_record:
            continue
        checkpoint = Checkpoint(identity, offsets.after(record_id))
        text: str = raw["data"]
        item = _event_item(path, context, record_id, text, checkpoint)
        yield item
    if layout.truncated_chunk is not None:
        yield Item(DeadLetter.of(
            f"{path} chunk {layout.truncated_chunk}",
            f"the file ends {layout.truncated_bytes} bytes into this chunk (expected {CHUNK_SIZE}); "
            "the evtx parser skips a partial chunk, so its records could not be read",
            _chunk_bytes(path, layout.truncated_chunk)), checkpoint)


def _event_item(path: Path, context: CollectorContext, record_id: int, text: str, checkpoint: Checkpoint) -> Item:
    try:
        record: Any = orjson.loads(text)
        mapped = map_windows_record(record)
    except (orjson.JSONDecodeError, ParseError) as exc:
        return Item(DeadLetter.of(f"{path} record {record_id}", str(exc), text), checkpoint)
    except Exception as exc:  # a record shaped in a way the mapper did not foresee: keep it, name it, go on
        return Item(DeadLetter.of(f"{path} record {record_id}",
                                  f"the Windows mapper failed on this record: {type(exc).__name__}: {exc}", text),
                    checkpoint)
    winlog = mapped.fields["winlog"]
    # The position is the record's own EventRecordID (an export of filtered events renumbers the
    # record headers from 1 but keeps EventRecordID) plus its creation time: a log that was
    # recreated (a reverted VM, a reinstalled Sysmon) counts from 1 again, and without the time
    # two different records would share an id and the store would keep only one.
    windows_record_id = winlog.setdefault("record_id", str(record_id))
    stream = winlog.get("channel") or winlog.get("provider_name") or ""
    event = context.event(
        mapped.fields,
        timestamp=mapped.timestamp,
        source=f"evtx:{winlog.get('computer_name', '')}:{stream}",
        position=f"{windows_record_id}@{mapped.timestamp.isoformat()}",
        module=mapped.module,
        dataset=mapped.dataset,
        original=text,
    )
    return Item(event, checkpoint)
