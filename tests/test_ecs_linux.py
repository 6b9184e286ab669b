"""Syslog file lines → ECS, checked against loghub's own parse of the same lines.

loghub ships, next to each 2,000-line log, a ``*_structured.csv`` with one row per line (date, host,
component, PID, content, template id) and the templates (``Invalid user <*> from <*>``). Those are an
independent source: the header fields are compared line by line, the values a template's ``<*>``
captures are compared with the ECS fields, and every template must map to one classification.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from civicsoc.event import get_field
from collectors.base import Mapped, ParseError
from collectors.ecs.syslog import parse_syslog_line

NOW = datetime(2005, 12, 31, 12, 0, tzinfo=UTC)
MONTHS = {m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                                      "Dec"], 1)}


def _template_patterns(path: Path) -> dict[str, re.Pattern[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["EventId"]: re.compile(re.escape(row["EventTemplate"]).replace(re.escape("<*>"), "(.*?)"))
                for row in csv.DictReader(handle)}


def _lines_with_rows(log: Path) -> Iterator[tuple[int, str, dict[str, str]]]:
    """The log's lines (streamed) zipped with loghub's structured row for each."""
    structured = log.with_name(log.name + "_structured.csv")
    with log.open(encoding="utf-8") as lines, structured.open(newline="", encoding="utf-8") as rows:
        for number, (line, row) in enumerate(zip(lines, csv.DictReader(rows), strict=True), 1):
            assert int(row["LineId"]) == number
            yield number, line.rstrip("\r\n"), row


def _parse_all(log: Path) -> Iterator[tuple[int, Mapped, dict[str, str]]]:
    for number, line, row in _lines_with_rows(log):
        try:
            mapped = parse_syslog_line(line, now=NOW)
        except ParseError as exc:  # pragma: no cover - the assertion message is the point
            pytest.fail(f"{log.name}:{number}: {exc}")
        yield number, mapped, row


def _classification(mapped: Mapped) -> tuple[str | None, str | None]:
    return get_field(mapped.fields, "event.action"), get_field(mapped.fields, "event.outcome")


# --- OpenSSH_2k.log ---------------------------------------------------------------------------

# Hand-classified from OpenSSH_2k.log_templates.csv: what each loghub template means.
OPENSSH_EXPECTED = {
    "E1": ("ssh_login", "success"), "E2": ("ssh_connection_closed", None), "E3": ("ssh_no_identification", None),
    "E4": ("max_auth_attempts_exceeded", "failure"), "E5": ("max_auth_attempts_exceeded", "failure"),
    "E6": ("ssh_disconnect_received", None), "E7": ("ssh_disconnect_received", None),
    "E8": ("ssh_login", "failure"), "E9": ("ssh_login", "failure"), "E10": ("ssh_login", "failure"),
    "E11": (None, None), "E12": ("invalid_user_request", "failure"), "E13": ("invalid_user", "failure"),
    "E14": ("ssh_login", "failure"), "E15": ("authentication_failure", "failure"),
    "E16": ("authentication_failure", "failure"), "E17": ("authentication_failure", "failure"), "E18": (None, None),
    "E19": ("authentication_failure", "failure"), "E20": ("authentication_failure", "failure"),
    "E21": ("user_unknown", "failure"), "E22": ("session_closed", "success"), "E23": ("session_opened", "success"),
    "E24": ("ssh_disconnect_received", None), "E25": ("ssh_disconnect_received", None),
    "E26": ("ssh_disconnect_received", None), "E27": ("possible_break_in_attempt", None),
}

# template → ECS field for each <*> (None: not mapped)
OPENSSH_CAPTURES: dict[str, tuple[str | None, ...]] = {
    "E1": ("user.name", "source.ip", "source.port"),
    "E8": ("user.name", "source.ip", "source.port"),
    "E9": ("user.name", "source.ip", "source.port"),
    "E10": ("user.name", "source.ip", "source.port"),
    "E12": ("user.name",),
    "E13": ("user.name", "source.ip"),
    "E19": (None, None, "source.address"),
    "E20": (None, None, "source.address", "user.name"),
    "E22": ("user.name",),
    "E23": ("user.name", None),
    "E24": ("source.ip", "system.auth.ssh.disconnect_code"),
    "E27": ("source.domain", "source.ip"),
    "E3": ("source.ip",),
}


def test_every_openssh_line_parses_with_loghubs_header_fields(shared_data: Path) -> None:
    log = shared_data / "loghub" / "OpenSSH" / "OpenSSH_2k.log"
    count = 0
    for number, mapped, row in _parse_all(log):
        count += 1
        where = f"line {number}"
        assert mapped.module == "system" and mapped.dataset == "system.auth", where
        assert get_field(mapped.fields, "host.hostname") == row["Component"], where  # loghub calls the host so
        assert get_field(mapped.fields, "process.name") == "sshd", where
        assert get_field(mapped.fields, "process.pid") == int(row["Pid"]), where
        assert mapped.fields["message"].strip() == row["Content"].strip(), where
        hour, minute, second = map(int, row["Time"].split(":"))
        assert mapped.timestamp == datetime(2005, MONTHS[row["Date"]], int(row["Day"]), hour, minute, second,
                                            tzinfo=UTC), where
    assert count == 2000


def test_openssh_templates_map_to_one_classification_each(shared_data: Path) -> None:
    log = shared_data / "loghub" / "OpenSSH" / "OpenSSH_2k.log"
    seen: dict[str, set[tuple[str | None, str | None]]] = defaultdict(set)
    for _, mapped, row in _parse_all(log):
        seen[row["EventId"]].add(_classification(mapped))
    assert {template: classifications for template, classifications in seen.items()} == {
        template: {expected} for template, expected in OPENSSH_EXPECTED.items()
    }


def test_openssh_captured_values_match_loghub_templates(shared_data: Path) -> None:
    log = shared_data / "loghub" / "OpenSSH" / "OpenSSH_2k.log"
    templates = _template_patterns(log.with_name("OpenSSH_2k.log_templates.csv"))
    checked = Counter()
    for number, mapped, row in _parse_all(log):
        targets = OPENSSH_CAPTURES.get(row["EventId"])
        if targets is None:
            continue
        captured = templates[row["EventId"]].fullmatch(row["Content"])
        assert captured is not None, f"line {number}: loghub's template does not match its own content"
        for target, value in zip(targets, captured.groups(), strict=True):
            if target is None:
                continue
            actual = get_field(mapped.fields, target)
            assert str(actual) == value.rstrip(), f"line {number} {target}: {actual!r} != loghub's {value!r}"
            checked[target] += 1
    # the brute force in this sample: hundreds of failed passwords and invalid users were checked
    assert checked["source.ip"] > 1000 and checked["user.name"] > 600


def test_failed_password_events_equal_loghubs_template_counts(shared_data: Path) -> None:
    log = shared_data / "loghub" / "OpenSSH" / "OpenSSH_2k.log"
    templates = Counter(row["EventId"] for _, _, row in _lines_with_rows(log))
    failed_password = repeated = invalid_users = 0
    related_ips: set[str] = set()
    for _, mapped, _ in _parse_all(log):
        ssh = get_field(mapped.fields, "system.auth.ssh", {})
        if ssh.get("event") == "Failed" and ssh.get("method") == "password":
            if get_field(mapped.fields, "system.message_repeated") is None:
                failed_password += 1
            else:
                repeated += 1
                assert mapped.fields["system"]["message_repeated"] == 5  # "message repeated 5 times"
        if get_field(mapped.fields, "event.action") == "invalid_user":
            invalid_users += 1
        related_ips.update(get_field(mapped.fields, "related.ip", []))
    assert failed_password == templates["E9"] + templates["E10"]
    assert repeated == templates["E14"]
    assert invalid_users == templates["E13"]
    assert "173.234.31.186" in related_ips  # the first attacker of the file, by reading it


# --- Linux_2k.log -----------------------------------------------------------------------------

LINUX_CAPTURES: dict[str, tuple[str | None, ...]] = {
    "E9": ("source.ip",),
    "E13": ("source.ip", None),
    "E14": ("source.ip", None),
    "E16": ("source.address",),
    "E17": ("source.address",),
    "E18": ("source.address",),
    "E19": ("source.address",),
    "E29": ("source.ip", "source.domain", None, None, None),
    "E101": ("user.name",),
    "E102": ("user.name", None),
}


def test_every_linux_line_parses_with_loghubs_header_fields(shared_data: Path) -> None:
    log = shared_data / "loghub" / "Linux" / "Linux_2k.log"
    datasets = Counter()
    count = 0
    for number, mapped, row in _parse_all(log):
        count += 1
        where = f"line {number}"
        assert get_field(mapped.fields, "host.hostname") == row["Level"], where  # loghub's column name
        assert get_field(mapped.fields, "process.name") == row["Component"], where
        assert get_field(mapped.fields, "process.pid") == (int(row["PID"]) if row["PID"] else None), where
        assert mapped.fields["message"].strip() == row["Content"].strip(), where
        hour, minute, second = map(int, row["Time"].split(":"))
        assert mapped.timestamp == datetime(2005, MONTHS[row["Month"]], int(row["Date"]), hour, minute, second,
                                            tzinfo=UTC), where
        datasets[mapped.dataset] += 1
    assert count == 2000
    # auth programs (sshd, su, ftpd, klogind, login ...) vs the rest (kernel, cups, logrotate ...)
    components = Counter(row["Component"].split("(")[0] for _, _, row in _lines_with_rows(log))
    auth = sum(n for name, n in components.items() if name in {"sshd", "su", "ftpd", "klogind", "login", "gdm"})
    assert datasets["system.auth"] == auth + 1  # + "-- root[2421]: ROOT LOGIN ON tty2", login(1) under an odd tag


def test_linux_captured_values_match_loghub_templates(shared_data: Path) -> None:
    log = shared_data / "loghub" / "Linux" / "Linux_2k.log"
    templates = _template_patterns(log.with_name("Linux_2k.log_templates.csv"))
    checked = Counter()
    failures_by_template = Counter()
    for number, mapped, row in _parse_all(log):
        if get_field(mapped.fields, "event.action") == "authentication_failure":
            failures_by_template[row["EventId"]] += 1
        targets = LINUX_CAPTURES.get(row["EventId"])
        if targets is None:
            continue
        captured = templates[row["EventId"]].fullmatch(row["Content"])
        assert captured is not None, f"line {number}"
        for target, value in zip(targets, captured.groups(), strict=True):
            if target is not None:  # "connection from 1.2.3.4 () at ...": no name, no field
                assert get_field(mapped.fields, target) == (value.rstrip() or None), f"line {number} {target}"
                checked[row["EventId"]] += 1
    assert checked["E29"] == 2 * 909 and checked["E18"] == 351
    # PAM "authentication failure" lines are exactly loghub's templates E15..E19
    all_rows = Counter(row["EventId"] for _, _, row in _lines_with_rows(log))
    assert failures_by_template == {t: all_rows[t] for t in ("E15", "E16", "E17", "E18", "E19")}


# --- timestamps -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("line", "now", "expected"),
    [
        # a December line read on New Year's morning belongs to the year before
        ("Dec 31 23:59:59 h p: m", datetime(2006, 1, 1, 0, 10, tzinfo=UTC), datetime(2005, 12, 31, 23, 59, 59)),
        # less than a day ahead (clock skew): still this year
        ("Jun 16 10:00:00 h p: m", datetime(2006, 6, 15, 12, 0, tzinfo=UTC), datetime(2006, 6, 16, 10, 0, 0)),
        # more than a day ahead: last year
        ("Jun 17 13:00:00 h p: m", datetime(2006, 6, 15, 12, 0, tzinfo=UTC), datetime(2005, 6, 17, 13, 0, 0)),
        # Feb 29 read in a common year: the year before, if it had one (2004 did, 2008 did)
        ("Feb 29 08:00:00 h p: m", datetime(2005, 3, 1, tzinfo=UTC), datetime(2004, 2, 29, 8, 0, 0)),
        ("Feb 29 08:00:00 h p: m", datetime(2008, 3, 1, tzinfo=UTC), datetime(2008, 2, 29, 8, 0, 0)),
        ("Feb 29 08:00:00 h p: m", datetime(2007, 3, 1, tzinfo=UTC), None),  # 2007 and 2006: neither
        ("Feb 30 08:00:00 h p: m", datetime(2008, 3, 1, tzinfo=UTC), None),
        # single-digit day padded with a space, fractional seconds (rsyslog high precision off/on)
        ("Jul  3 04:08:03 combo syslogd 1.4.1: restart.", NOW, datetime(2005, 7, 3, 4, 8, 3)),
        ("2019-06-14T10:40:20.912134 localhost sudo: x", NOW, datetime(2019, 6, 14, 10, 40, 20, 912134)),
        ("2019-06-14T13:01:15.412+01:30 localhost pam: user nobody logged out.", NOW,
         datetime(2019, 6, 14, 11, 31, 15, 412000)),
    ],
)
def test_bsd_and_iso_timestamps(line: str, now: datetime, expected: datetime | None) -> None:
    if expected is None:
        with pytest.raises(ParseError, match="not a syslog line"):
            parse_syslog_line(line, now=now)
        return
    assert parse_syslog_line(line, now=now).timestamp == expected.replace(tzinfo=UTC)


def test_bsd_timestamp_is_read_in_the_given_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    summer = parse_syslog_line("Jul  1 12:00:00 h p: m", now=NOW, tz=berlin)
    winter = parse_syslog_line("Jan 15 12:00:00 h p: m", now=NOW, tz=berlin)
    assert summer.timestamp == datetime(2005, 7, 1, 10, 0, tzinfo=UTC)  # CEST = UTC+2
    assert winter.timestamp == datetime(2005, 1, 15, 11, 0, tzinfo=UTC)  # CET = UTC+1
    # the year comes from "now" in that zone: 23:30 UTC on Dec 31 is already 2006 in Berlin
    late = datetime(2005, 12, 31, 23, 30, tzinfo=UTC)
    assert parse_syslog_line("Jan  1 00:20:00 h p: m", now=late, tz=berlin).timestamp == \
        datetime(2005, 12, 31, 23, 20, tzinfo=UTC)  # 00:20 CET on Jan 1, 2006
    assert parse_syslog_line("Jan  1 00:20:00 h p: m", now=late, tz=UTC).timestamp == \
        datetime(2005, 1, 1, 0, 20, tzinfo=UTC)  # in UTC it is still 2005: Jan 1 is eleven months back


def test_rfc5424_line_in_a_file_and_unknown_programs() -> None:
    mapped = parse_syslog_line(
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        'eventSource="Application" eventID="1011"] An application event log entry...', now=NOW)
    assert mapped.timestamp == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert mapped.fields["log"]["syslog"]["facility"] == {"code": 20, "name": "local4"}
    assert mapped.fields["log"]["syslog"]["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}}
    assert (mapped.module, mapped.dataset) == ("system", "system.syslog")
    unknown = parse_syslog_line("Mar  1 10:00:00 web01 myapp[77]: something: happened", now=NOW)
    assert unknown.fields == {
        "log": {"syslog": {"hostname": "web01", "appname": "myapp", "procid": "77"}},
        "host": {"hostname": "web01"},
        "process": {"name": "myapp", "pid": 77},
        "message": "something: happened",
    }
    no_tag = parse_syslog_line("Mar  1 10:00:00 web01 a message without a tag", now=NOW)
    assert no_tag.fields["message"] == "a message without a tag" and "process" not in no_tag.fields


@pytest.mark.parametrize("line", ["", "hello world", "2024-13-45T99:00:00Z host p: m", "<999>Oct 11 22:14:15 h p: m",
                                  "Foo 11 22:14:15 host p: m", "{\"json\": true}"])
def test_lines_that_are_not_syslog_raise_with_what_was_expected(line: str) -> None:
    with pytest.raises(ParseError, match="expected 'Mmm dd HH:MM:SS host tag: message'"):
        parse_syslog_line(line, now=NOW)


# --- program mappers on hand-checked lines (formats as sshd, sudo, shadow-utils ... write them) -------

def _fields(line: str) -> tuple[dict[str, Any], str]:
    mapped = parse_syslog_line(line, now=NOW)
    return mapped.fields, mapped.dataset


def test_sshd_modern_formats() -> None:
    fields, dataset = _fields("Feb 21 21:54:44 bastion sshd[3402]: Accepted publickey for deploy from 10.0.2.2 port "
                              "63673 ssh2: ED25519 SHA256:Vh0FhJ1u2z0Vx3b6x0Yp8qV0yq3YkqU8sQ0xgQm0a9s")
    assert dataset == "system.auth"
    assert fields["event"] == {"category": ["authentication", "session"], "type": ["info"], "action": "ssh_login",
                               "outcome": "success"}
    assert fields["user"] == {"name": "deploy"}
    assert fields["source"] == {"address": "10.0.2.2", "ip": "10.0.2.2", "port": 63673}
    assert fields["system"]["auth"]["ssh"] == {
        "event": "Accepted", "method": "publickey",
        "signature": "ED25519 SHA256:Vh0FhJ1u2z0Vx3b6x0Yp8qV0yq3YkqU8sQ0xgQm0a9s"}
    assert fields["related"] == {"user": ["deploy"], "ip": ["10.0.2.2"]}

    fields, _ = _fields("Mar  2 01:02:03 h sshd-session[9]: Failed password for invalid user admin from "
                        "2001:db8::7 port 40022 ssh2")
    assert (fields["event"]["outcome"], fields["user"]["name"], fields["source"]["ip"]) == ("failure", "admin",
                                                                                          "2001:db8::7")
    assert fields["system"]["auth"]["ssh"]["invalid_user"] is True

    fields, _ = _fields("Mar  2 01:02:03 h sshd[9]: Connection closed by authenticating user root 203.0.113.9 port "
                        "51000 [preauth]")
    assert (fields["event"]["action"], fields["user"]["name"], fields["source"]["port"]) == (
        "ssh_connection_closed", "root", 51000)
    fields, _ = _fields("Mar  2 01:02:03 h sshd[9]: Disconnected from invalid user oracle 203.0.113.9 port 51001 "
                        "[preauth]")
    assert (fields["event"]["action"], fields["user"]["name"]) == ("ssh_disconnected", "oracle")
    fields, _ = _fields("Mar  2 01:02:03 h sshd[9]: Received disconnect from 203.0.113.9 port 51002:11: Bye Bye "
                        "[preauth]")
    assert fields["source"]["port"] == 51002 and fields["system"]["auth"]["ssh"]["disconnect_code"] == 11
    fields, _ = _fields("Mar  2 01:02:03 h sshd[9]: error: maximum authentication attempts exceeded for invalid "
                        "user test from 203.0.113.9 port 51003 ssh2 [preauth]")
    assert (fields["event"]["action"], fields["user"]["name"]) == ("max_auth_attempts_exceeded", "test")
    # user names are the attacker's: one that reads like an address must not become the source
    fields, _ = _fields("Mar  2 01:02:03 h sshd[9]: Invalid user x from 6.6.6.6 from 203.0.113.9 port 51004")
    assert (fields["user"]["name"], fields["source"]["ip"]) == ("x from 6.6.6.6", "203.0.113.9")
    fields, _ = _fields("Mar  2 01:02:03 h sshd[9]: pam_unix(sshd:auth): authentication failure; logname= uid=0 "
                        "euid=0 tty=ssh ruser= rhost=203.0.113.9  user=x rhost=6.6.6.6")
    assert (fields["user"]["name"], fields["source"]["ip"]) == ("x rhost=6.6.6.6", "203.0.113.9")
    fields, _ = _fields("Mar  2 01:02:03 h sshd[9]: Server listening on 0.0.0.0 port 22.")
    assert "event" not in fields and fields["message"] == "Server listening on 0.0.0.0 port 22."


def test_sudo_success_and_refusal() -> None:
    fields, dataset = _fields("Feb 23 00:08:48 localhost sudo: alice : TTY=pts/1 ; PWD=/home/alice ; USER=root ; "
                              "COMMAND=/bin/cat /var/log/secure")
    assert dataset == "system.auth"
    assert fields["event"] == {"category": ["process"], "type": ["start"], "action": "sudo_command",
                               "outcome": "success"}
    assert fields["process"] == {"name": "sudo", "command_line": "/bin/cat /var/log/secure",
                                 "working_directory": "/home/alice"}
    assert fields["user"] == {"name": "alice", "effective": {"name": "root"}}
    assert fields["related"]["user"] == ["alice", "root"]
    fields, _ = _fields("Feb 24 00:13:02 precise32 sudo:      tsg : user NOT in sudoers ; TTY=pts/1 ; "
                        "PWD=/home/vagrant ; USER=root ; COMMAND=/bin/ls")
    assert fields["event"]["outcome"] == "failure"
    assert fields["system"]["auth"]["sudo"]["error"] == "user NOT in sudoers"
    assert fields["user"]["name"] == "tsg"
    fields, _ = _fields("Jun  4 10:00:00 h sudo: pam_unix(sudo:session): session opened for user root(uid=0) by "
                        "alice(uid=1000)")
    assert fields["event"]["action"] == "session_opened"
    assert fields["user"] == {"name": "alice", "effective": {"name": "root"}, "id": "1000"}


def test_su_logind_and_cron() -> None:
    fields, _ = _fields("Jun  4 10:00:00 h su[812]: (to root) alice on pts/0")
    assert fields["event"]["outcome"] == "success" and fields["user"] == {"name": "alice",
                                                                          "effective": {"name": "root"}}
    fields, _ = _fields("Jun  4 10:00:00 h su[813]: FAILED SU (to root) mallory on pts/1")
    assert fields["event"]["outcome"] == "failure" and fields["user"]["name"] == "mallory"
    fields, dataset = _fields("Jun  4 10:00:00 h systemd-logind[501]: New session 42 of user alice.")
    assert (dataset, fields["event"]["type"], fields["user"]["name"]) == ("system.auth", ["start"], "alice")
    assert fields["system"]["auth"]["session"]["id"] == "42"
    fields, _ = _fields("Jun  4 11:00:00 h systemd-logind[501]: Removed session 42.")
    assert fields["event"]["action"] == "removed_session" and fields["event"]["type"] == ["end"]
    fields, dataset = _fields("Jun  4 11:17:01 h CRON[2200]: (root) CMD (   cd / && run-parts --report "
                              "/etc/cron.hourly)")
    assert dataset == "system.syslog"
    assert fields["process"]["command_line"] == "   cd / && run-parts --report /etc/cron.hourly"
    assert fields["user"]["name"] == "root" and fields["event"]["action"] == "cron_command"
    fields, _ = _fields("Jun  4 11:20:00 h crontab[2301]: (alice) REPLACE (alice)")
    assert "event" not in fields  # crontab(1) itself is not cron: only the message stays
    fields, _ = _fields("Jun  4 11:20:00 h /usr/sbin/cron[2301]: (alice) REPLACE (alice)")
    assert fields["event"]["action"] == "crontab_replace"


def test_account_management() -> None:
    fields, dataset = _fields("Feb 22 11:47:05 localhost useradd[6995]: new user: name=apache, UID=48, GID=48, "
                              "home=/usr/share/httpd, shell=/sbin/nologin, from=/dev/pts/0")
    assert dataset == "system.auth"
    assert fields["event"] == {"category": ["iam"], "type": ["user", "creation"], "action": "user_created",
                               "outcome": "success"}
    assert fields["user"] == {"name": "apache", "id": "48"} and fields["group"] == {"id": "48"}
    assert fields["system"]["auth"]["useradd"] == {"home": "/usr/share/httpd", "shell": "/sbin/nologin"}
    fields, _ = _fields("Feb 22 11:47:05 localhost groupadd[6991]: new group: name=apache, GID=48")
    assert fields["event"]["type"] == ["group", "creation"] and fields["group"] == {"name": "apache", "id": "48"}
    fields, _ = _fields("Feb 22 11:47:05 localhost groupadd[6991]: group added to /etc/gshadow: name=apache")
    assert fields["group"] == {"name": "apache"}
    fields, _ = _fields("Feb 22 11:50:00 localhost usermod[7001]: add 'alice' to group 'sudo'")
    assert (fields["event"]["action"], fields["user"]["name"], fields["group"]["name"]) == (
        "user_added_to_group", "alice", "sudo")
    fields, _ = _fields("Feb 22 11:51:00 localhost userdel[7002]: delete user 'bob'")
    assert fields["event"]["type"] == ["user", "deletion"] and fields["user"]["name"] == "bob"
    fields, _ = _fields("Feb 22 11:52:00 localhost passwd[7003]: pam_unix(passwd:chauthtok): password changed for "
                        "alice")
    assert fields["event"] == {"category": ["iam"], "type": ["user", "change"], "action": "password_changed",
                               "outcome": "success"}
    fields, _ = _fields("Feb 22 11:53:00 localhost useradd[7004]: failed adding user 'eve', data deleted")
    assert fields["event"]["outcome"] == "failure" and fields["user"]["name"] == "eve"


def test_auditd_relayed_through_syslog_becomes_auditd_event() -> None:
    mapped = parse_syslog_line(
        'Nov 10 08:19:45 wardog audispd: node=wardog type=SYSCALL msg=audit(1604996384.965:93777): arch=c000003e '
        'syscall=59 success=yes exit=0 ppid=29002 pid=2168 auid=1000 uid=1000 comm="dd" exe="/bin/dd" key=(null)',
        now=datetime(2020, 11, 11, tzinfo=UTC))
    assert (mapped.module, mapped.dataset) == ("auditd", "auditd.log")
    assert mapped.timestamp == datetime(2020, 11, 10, 8, 19, 44, 965000, tzinfo=UTC)  # the record's, not the header's
    assert mapped.fields["process"] == {"pid": 2168, "parent": {"pid": 29002}, "executable": "/bin/dd", "name": "dd"}
    assert mapped.fields["log"]["syslog"]["appname"] == "audispd"
    kernel = parse_syslog_line(
        'Nov 10 08:20:00 wardog kernel: [ 1234.5678] audit: type=1400 audit(1604996400.100:50): apparmor="DENIED" '
        'operation="open" profile="/usr/sbin/cupsd" name="/etc/shadow" pid=1234 comm="cupsd" requested_mask="r"',
        now=datetime(2020, 11, 11, tzinfo=UTC))
    assert kernel.dataset == "auditd.log"
    assert kernel.fields["auditd"]["log"]["record_type"] == "AVC"
    assert kernel.fields["auditd"]["log"]["apparmor"] == "DENIED"
    plain = parse_syslog_line("Nov 10 08:20:00 wardog kernel: audit(1122475266.4294965305:0): initialized",
                              now=datetime(2020, 11, 11, tzinfo=UTC))
    assert plain.dataset == "system.syslog"
