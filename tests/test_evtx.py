"""The .evtx reader on real files: completeness, ids, checkpoints, corrupt input.

Record counts and ids are checked against ``python-evtx`` (``Evtx.Evtx``), a pure-Python EVTX
decoder that shares no code with the Rust ``evtx`` crate the reader uses.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import pytest
from Evtx.BinaryParser import OverrunBufferException
from Evtx.Evtx import Evtx

from civicsoc.event import Event
from collectors.base import Checkpoint, CollectorContext, DeadLetter, Item, ParseError
from collectors.evtx import is_evtx, read_evtx

CORPORA = ("evtx-attack-samples", "evtx-to-mitre-attack", "deepbluecli-evtx", "hayabusa-sample-evtx",
           "sigmahq-regression-data")
CHUNK_SIZE = 65536
FILE_HEADER_SIZE = 4096


@pytest.fixture
def context() -> CollectorContext:
    return CollectorContext(tenant="agency-a")


def evtx_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix.lower() == ".evtx")


def python_evtx_record_numbers(path: Path, *, include_inactive: bool = False) -> list[int]:
    """Record numbers as python-evtx reads them. ``include_inactive`` also walks chunks beyond the
    file header's chunk count (slack of dirty or VSS-carved logs), skipping ones without the magic."""
    numbers = []
    with Evtx(str(path)) as log:
        for chunk in log.get_file_header().chunks(include_inactive=include_inactive):
            if include_inactive and not chunk.check_magic():
                continue
            numbers.extend(record.record_num() for record in chunk.records())
    return numbers


def split(items: list[Item]) -> tuple[list[Event], list[DeadLetter]]:
    events = [item.value for item in items if isinstance(item.value, Event)]
    dead = [item.value for item in items if isinstance(item.value, DeadLetter)]
    return events, dead


@pytest.mark.parametrize("corpus", CORPORA)
def test_every_file_of_a_corpus_is_read_completely(shared_data: Path, context: CollectorContext, corpus: str) -> None:
    files = evtx_files(shared_data / corpus)
    assert files, f"no .evtx files in {corpus}"
    problems = []
    for path in files:
        items = list(read_evtx(path, context))
        events, dead = split(items)
        if dead:
            problems.append(f"{path}: dead letters {[(d.location, d.reason) for d in dead]}")
        expected = python_evtx_record_numbers(path)
        if len(events) != len(expected):
            problems.append(f"{path}: {len(events)} events, python-evtx reads {len(expected)} records")
        # These files are in record order, so each checkpoint is the record number + 1.
        read = sorted(item.checkpoint.offset - 1 for item in items if item.checkpoint is not None)
        if read != sorted(expected):
            problems.append(f"{path}: record numbers differ from python-evtx's")
    assert not problems, "\n".join(problems)


def test_events_are_stamped_for_the_store(shared_data: Path, context: CollectorContext) -> None:
    path = shared_data / "evtx-attack-samples" / "Command and Control" / "DE_sysmon-3-rdp-tun.evtx"
    events, _ = split(list(read_evtx(path, context)))
    assert events
    for event in events:
        fields = event.fields
        assert fields["organization"]["id"] == "agency-a"
        assert fields["event"]["id"] == event.id
        assert fields["event"]["module"] == "windows"
        assert fields["event"]["dataset"] == "windows.sysmon_operational"
        assert fields["event"]["original"].startswith('{"Event":')
        assert event.timestamp.utcoffset().total_seconds() == 0


def test_originals_are_left_out_when_the_context_says_so(shared_data: Path) -> None:
    path = shared_data / "evtx-attack-samples" / "Command and Control" / "DE_sysmon-3-rdp-tun.evtx"
    events, _ = split(list(read_evtx(path, CollectorContext(tenant="a", keep_original=False))))
    assert events
    assert all("original" not in event.fields["event"] for event in events)


def test_the_same_record_from_two_different_exports_gets_one_id(shared_data: Path, context: CollectorContext) -> None:
    base = shared_data / "evtx-to-mitre-attack"
    first = (base / "EVTX_full_APT_attack_steps"
             / "ID5140-5145,4688,4697-Encrypted payload deployed with service over SMB (GLOBAL).evtx")
    second = (base / "TA0002-Execution" / "T1059.001-PowerShell"
              / "ID4688-Encoded PowerShell MSF payload via process execution.evtx")
    assert first.read_bytes() != second.read_bytes()
    first_events = {event.id: event for event in split(list(read_evtx(first, context)))[0]}
    second_events = {event.id: event for event in split(list(read_evtx(second, context)))[0]}
    shared = first_events.keys() & second_events.keys()
    assert shared
    for event_id in shared:
        # Same id only for the very same Windows record: the crate's JSON of both is identical.
        assert first_events[event_id].fields["event"]["original"] == second_events[event_id].fields["event"]["original"]
    # ... and the other records of the files are different records with different ids.
    assert len(first_events) > len(shared)


def test_different_records_never_share_an_id(shared_data: Path, context: CollectorContext) -> None:
    """Lab logs reuse computer names and record ids (a reverted VM numbers again from its snapshot):
    the id must still tell such records apart, or the store would drop one of them as a duplicate."""
    originals: dict[str, set[str]] = defaultdict(set)
    for corpus in CORPORA:
        for path in evtx_files(shared_data / corpus):
            for event in split(list(read_evtx(path, context)))[0]:
                originals[event.id].add(event.fields["event"]["original"])
    collisions = {event_id: texts for event_id, texts in originals.items() if len(texts) > 1}
    assert not collisions, f"{len(collisions)} ids name different records"


def _ids(items: list[Item]) -> list[str]:
    return [item.value.id for item in items if isinstance(item.value, Event)]


@pytest.mark.parametrize("name", [
    "2-system-Microsoft-Windows-LiveId%4Operational.evtx",  # wrapped: its oldest chunk is the last one
    "E_ShadowCopy6_windows_system32_winevt_logs_Microsoft-Windows-CAPI2%4Operational.evtx",  # wrapped
    "Security_with_size_t.evtx",  # in record order
])
def test_resuming_from_any_checkpoint_loses_no_record(shared_data: Path, context: CollectorContext,
                                                      name: str) -> None:
    path = shared_data / "evtx-parser-samples" / "samples" / name
    full = list(read_evtx(path, context))
    events, dead = split(full)
    assert not dead and len(events) > 100
    positions = sorted({0, 1, len(full) // 3, len(full) // 2, len(full) - 2, len(full) - 1,
                        *range(0, len(full), 37)})
    ordered = python_evtx_record_numbers(path) == sorted(python_evtx_record_numbers(path))
    for position in positions:
        checkpoint = full[position].checkpoint
        assert isinstance(checkpoint, Checkpoint)
        resumed = _ids(list(read_evtx(path, context, start_record=checkpoint.offset)))
        remaining = _ids(full[position + 1:])
        missing = set(remaining) - set(resumed)
        assert not missing, f"resuming after item {position} (offset {checkpoint.offset}) loses {len(missing)}"
        if ordered:
            assert resumed == remaining  # in record order, nothing is read twice either


def test_checkpoints_name_the_file(shared_data: Path, context: CollectorContext, tmp_path: Path) -> None:
    original = shared_data / "hayabusa-sample-evtx"
    path = evtx_files(original)[0]
    copy = tmp_path / "copy.evtx"
    shutil.copyfile(path, copy)
    sources = {item.checkpoint.source for item in read_evtx(path, context)}
    copy_sources = {item.checkpoint.source for item in read_evtx(copy, context)}
    assert len(sources) == 1 and len(copy_sources) == 1
    assert str(path.resolve()) in sources.pop()
    assert str(copy.resolve()) in copy_sources.pop()


def test_a_file_that_is_not_evtx_is_refused_with_a_clear_error(shared_data: Path, context: CollectorContext) -> None:
    not_evtx = shared_data / "evtx-parser-samples" / "PROVENANCE.md"
    assert not is_evtx(not_evtx)
    with pytest.raises(ParseError) as error:
        next(read_evtx(not_evtx, context))
    assert str(not_evtx) in str(error.value)
    assert "ElfFile" in str(error.value)


def test_is_evtx_recognises_real_logs(shared_data: Path) -> None:
    assert all(is_evtx(path) for path in evtx_files(shared_data / "hayabusa-sample-evtx"))


def test_a_cut_off_header_is_refused(shared_data: Path, context: CollectorContext, tmp_path: Path) -> None:
    source = shared_data / "evtx-parser-samples" / "samples" / "sysmon.evtx"
    cut = tmp_path / "cut-header.evtx"
    cut.write_bytes(source.read_bytes()[:2000])
    assert is_evtx(cut)
    with pytest.raises(ParseError) as error:
        next(read_evtx(cut, context))
    assert str(cut) in str(error.value)


def test_a_file_cut_inside_a_chunk_reads_the_whole_chunks_and_reports_the_cut_one(
        shared_data: Path, context: CollectorContext, tmp_path: Path) -> None:
    source = shared_data / "deepbluecli-evtx" / "evtx" / "smb-password-guessing-security.evtx"
    cut = tmp_path / "cut.evtx"
    cut.write_bytes(source.read_bytes()[:FILE_HEADER_SIZE + 3 * CHUNK_SIZE + 30000])
    events, dead = split(list(read_evtx(cut, context)))
    assert len(events) == len(python_evtx_record_numbers(cut))  # python-evtx reads whole chunks only
    assert len(events) < len(python_evtx_record_numbers(source))
    assert len(dead) == 1
    assert dead[0].location == f"{cut} chunk 3"
    assert "30000" in dead[0].reason


def test_bad_chunks_become_dead_letters_and_the_rest_is_read(shared_data: Path, context: CollectorContext) -> None:
    path = shared_data / "evtx-parser-samples" / "samples" / "sysmon.evtx"
    items = list(read_evtx(path, context))
    events, dead = split(items)
    # Chunks 9-16 of this VSS-carved log are overwritten: python-evtx finds no chunk magic there.
    with Evtx(str(path)) as log:
        broken = [number for number, chunk in enumerate(log.get_file_header().chunks(include_inactive=True))
                  if not chunk.check_magic() and any(chunk._buf[chunk._offset:chunk._offset + CHUNK_SIZE])]
    assert [letter.location for letter in dead] == [f"{path} chunk {number}" for number in broken]
    assert all("chunk header" in letter.reason for letter in dead)
    assert all(letter.raw for letter in dead)  # the chunk's bytes, as evidence
    # Every record of the intact chunks is read, including those past the header's chunk count.
    assert len(events) == len(python_evtx_record_numbers(path, include_inactive=True))
    assert len(events) > len(python_evtx_record_numbers(path))


def test_a_record_neither_decoder_can_read_is_a_dead_letter(shared_data: Path, context: CollectorContext) -> None:
    path = (shared_data / "evtx-parser-samples" / "samples"
            / "2-vss_0-Microsoft-Windows-TerminalServices-RemoteConnectionManager%4Operational.evtx")
    events, dead = split(list(read_evtx(path, context)))
    locations = [letter.location for letter in dead]
    assert f"{path} record 463011" in locations
    with Evtx(str(path)) as log:
        broken = [record for record in log.records() if record.record_num() == 463011]
        assert len(broken) == 1
        with pytest.raises(OverrunBufferException):  # python-evtx cannot render it either
            broken[0].xml()
    assert len(events) == len(python_evtx_record_numbers(path)) - 1


def test_a_record_without_a_time_is_a_dead_letter_naming_the_field(shared_data: Path,
                                                                    context: CollectorContext) -> None:
    path = shared_data / "evtx-parser-samples" / "samples" / "sample_with_a_bad_chunk_magic.evtx"
    events, dead = split(list(read_evtx(path, context)))
    by_location = {letter.location: letter for letter in dead}
    letter = by_location[f"{path} record 46741"]
    assert "TimeCreated" in letter.reason and "SystemTime" in letter.reason
    assert letter.raw.startswith('{"Event":')
    with Evtx(str(path)) as log:
        [record] = [record for record in log.records() if record.record_num() == 46741]
        assert 'SystemTime=""' in record.xml()  # python-evtx finds the creation time empty too
    assert {f"{path} chunk 6", f"{path} chunk 10"} <= by_location.keys()
    assert len(events) == len(python_evtx_record_numbers(path, include_inactive=True)) - 1


@pytest.mark.parametrize("name", [
    "2-system-Microsoft-Windows-LiveId%4Operational.evtx",
    "2-vss_7-System.evtx",
    "E_ShadowCopy6_windows_system32_winevt_logs_Microsoft-Windows-CAPI2%4Operational.evtx",
    "E_Windows_system32_winevt_logs_Microsoft-Windows-CAPI2%4Operational.evtx",
    "Microsoft-Windows-HelloForBusiness%4Operational.evtx",
    "Security_short_selected.evtx",
    "Security_with_size_t.evtx",
    "new-user-security.evtx",
    "post-Security.evtx",
    "security_bad_string_cache.evtx",
])
def test_parser_edge_cases_that_are_intact_are_read_completely(shared_data: Path, context: CollectorContext,
                                                               name: str) -> None:
    path = shared_data / "evtx-parser-samples" / "samples" / name
    events, dead = split(list(read_evtx(path, context)))
    assert not dead
    # Dirty or VSS-carved logs hold valid chunks past the header's count; both decoders read them.
    assert len(events) == len(python_evtx_record_numbers(path, include_inactive=True))


def test_a_zero_size_record_slot_is_reported_and_no_record_is_lost(shared_data: Path,
                                                                   context: CollectorContext) -> None:
    path = shared_data / "evtx-parser-samples" / "samples" / "sample-with-zero-data-size-event.evtx"
    events, dead = split(list(read_evtx(path, context)))
    assert len(dead) == 1
    assert dead[0].location == f"{path} after record 2"
    assert "data size" in dead[0].reason
    assert len(events) == len(python_evtx_record_numbers(path, include_inactive=True))
