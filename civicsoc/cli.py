"""The ``civicsoc`` command.

Every subcommand reads the same configuration (``--config``, environment, ``--store``) and any
``CivicsocError`` ends the command with one line on stderr and exit status 2: agency IT sees what to
fix, not a traceback.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from civicsoc import __version__
from civicsoc.config import Settings, load_settings
from civicsoc.errors import CivicsocError, ConfigError
from civicsoc.records import Severity

app = typer.Typer(
    name="civicsoc",
    help="Security monitoring for public-sector agencies: collect, detect, triage, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
store_app = typer.Typer(help="Inspect and maintain the event store.", no_args_is_help=True)
rules_app = typer.Typer(help="Validate and inspect Sigma rules.", no_args_is_help=True)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
app.add_typer(store_app, name="store")
app.add_typer(config_app, name="config")
app.add_typer(rules_app, name="rules")


def _mount_command_groups() -> None:
    from civicsoc.commands.admin import audit_app, tenant_app, token_app
    from civicsoc.commands.playbooks import playbooks_app
    from civicsoc.commands.report import report_app
    from civicsoc.commands.rules import register

    app.add_typer(token_app, name="token")
    app.add_typer(tenant_app, name="tenant")
    app.add_typer(audit_app, name="audit")
    app.add_typer(playbooks_app, name="playbooks")
    app.add_typer(report_app, name="report")
    register(rules_app)


_mount_command_groups()

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (default: $CIVICSOC_CONFIG or ./civicsoc.yaml)")
]
RulesOption = Annotated[
    list[Path] | None,
    typer.Option("--rules", "-r", help="Sigma rule file or folder (repeatable), besides rules.paths and the built-in"),
]
StoreOption = Annotated[
    str | None, typer.Option("--store", help="Store URL: sqlite:///path.db or http(s)://host:9200 (overrides config)")
]


class _State:
    config: Path | None = None
    store: str | None = None


state = _State()


@app.callback()
def main_options(config: ConfigOption = None, store: StoreOption = None) -> None:
    state.config = config
    state.store = store


def settings() -> Settings:
    return load_settings(state.config, overrides={"store.url": state.store})


@app.command()
def version() -> None:
    """Print the civicsoc version."""
    out.print(__version__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: api.host)")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: api.port)")] = None,
    rules: RulesOption = None,
    syslog_port: Annotated[int, typer.Option(help="Built-in syslog receiver port (UDP and TCP), 0 to turn it off")]
    = 5514,
    workers: Annotated[int, typer.Option(min=1, max=64, help=(
        "API worker processes. With more than one, the pipeline and syslog receiver stay in this process "
        "and each worker answers API requests on the same store (for many analysts, mainly on Elasticsearch)"))]
    = 1,
) -> None:
    """Run the API with the streaming pipeline and a syslog receiver, on the configured store
    (the embedded SQLite store by default). The first start creates a tenant and an admin token."""
    import logging
    import os
    import signal

    import uvicorn

    from api.serving import served_app, worker_environment
    from civicsoc import server
    from civicsoc.store import open_store
    from playbooks.loader import load_playbooks

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = settings()
    bind_host, bind_port = host or config.api.host, port or config.api.port
    if not server.port_free(bind_host, bind_port):
        raise CivicsocError(f"api port {bind_host}:{bind_port} is in use; choose another with --port")
    store = open_store(config)
    ruleset = _load_rules(config, rules)
    library = load_playbooks()
    err.print(f"civicsoc {__version__}: store {store.url}; {len(library.latest())} playbooks", highlight=False)
    issued = server.first_start(store, config.default_tenant)
    url = f"http://{bind_host}:{bind_port}"
    if issued is not None:
        err.print(f"first start: tenant {config.default_tenant!r} and an admin token (shown only now):",
                  highlight=False)
        out.print(issued.secret, highlight=False)
    builtin = None
    if syslog_port:
        detector = _detector_with_playbooks(ruleset, store, library)
        builtin = server.start_builtin_collector(config, store, detector, host=bind_host, port=syslog_port)
        receiver = builtin.collector.states["syslog"]
        if receiver.status == "failed":
            err.print(f"[red]syslog receiver failed:[/red] {receiver.error}", highlight=False)
        else:
            err.print(f"syslog on {bind_host}:{syslog_port} (UDP and TCP) for tenant {config.default_tenant!r}; "
                      f"try: logger -n {bind_host} -P {syslog_port} 'hello civicsoc'", highlight=False)
    err.print(f"API on {url}  (health: {url}/healthz, docs: {url}/docs)"
              + (f" in {workers} worker processes" if workers > 1 else ""), highlight=False)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the handler it found:
    # make that one a no-op, so the built-in collector still drains what it read before the process ends.
    # (With workers, uvicorn's supervisor takes the signals, stops the workers and returns here.)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    try:
        if workers == 1:
            uvicorn.run(served_app(config, store, ruleset, library), host=bind_host, port=bind_port,
                        log_level="info", log_config=_logs_on_stderr(uvicorn))
        else:
            os.environ.update(worker_environment(state.config, state.store, rules))
            uvicorn.run("api.serving:build_worker_app", factory=True, workers=workers, host=bind_host,
                        port=bind_port, log_level="info", log_config=_logs_on_stderr(uvicorn))
    finally:
        if builtin is not None:
            builtin.close()
        store.close()


def _logs_on_stderr(uvicorn: Any) -> dict[str, Any]:
    """uvicorn's log setup with the access log on stderr too: stdout carries only the first-start token."""
    import copy

    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


def _detector_with_playbooks(ruleset: Any, store: Any, library: Any) -> Any:
    """The streaming hook: rules on every event; new or grown incidents get their matching playbooks."""
    from detection.stream import StreamDetector

    if not ruleset.detections:
        return None
    return StreamDetector(ruleset, store, playbooks=library)


class IngestType(StrEnum):
    auto = "auto"
    evtx = "evtx"
    pcap = "pcap"
    syslog = "syslog"
    auth = "auth"
    audit = "audit"
    access = "access"
    ndjson = "ndjson"


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (read recursively) to import", exists=True)],
    kind: Annotated[IngestType, typer.Option("--type", help="Input kind; auto tells it from magic bytes and content")]
    = IngestType.auto,
    tenant: Annotated[str | None, typer.Option(help="Tenant (agency) the events belong to (default: default_tenant)")]
    = None,
    store_url: Annotated[str | None, typer.Option("--store", help="Store URL (overrides config)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    rules: RulesOption = None,
) -> None:
    """Import files once: EVTX, pcap, syslog/auth, auditd, access logs, NDJSON. Re-running adds nothing.

    Every event goes through the configured Sigma rules on the way in: matches become alerts and
    incidents.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from civicsoc.store import open_store
    from collectors.base import CollectorContext
    from collectors.ingest import ingest_files

    if store_url:
        state.store = store_url
    config = settings()
    context = CollectorContext(tenant=_tenant(tenant or config.default_tenant), agent_id="civicsoc-ingest")
    from collectors.sources import expand_paths

    total_files = len(expand_paths(paths))
    with open_store(config) as store, Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
        TextColumn("{task.fields[events]} events"), TimeElapsedColumn(),
        console=err, transient=True, disable=as_json or not err.is_terminal,
    ) as progress:
        task = progress.add_task("ingesting", total=total_files, events=0)
        finished: dict[Path, int] = {}

        def report(path: Path, events: int) -> None:
            finished[path] = events
            done = sum(1 for p in finished if p != path)
            progress.update(task, description=path.name[:40], completed=done, events=sum(finished.values()))

        detector = _detector(config, rules, store)
        summary = ingest_files(paths, store, context, state_dir=config.data_dir / "ingest",
                               kind=None if kind == IngestType.auto else kind.value, progress=report,
                               detection=detector,
                               alert_count=(lambda: detector.counters.alerts) if detector else (lambda: 0))
    if as_json:
        out.print_json(json.dumps(summary.as_dict()))
    else:
        for path, reason in summary.failed:
            where = reason if path in reason else f"{path}: {reason}"
            err.print(f"[red]failed:[/red] {where}", highlight=False, soft_wrap=True)
        if summary.skipped:
            err.print(f"skipped {len(summary.skipped)} files of no known kind (e.g. {summary.skipped[0][0]})",
                      highlight=False, soft_wrap=True)
        if summary.dead_letter_file:
            err.print(f"dead letters (with reasons): {summary.dead_letter_file}", highlight=False, soft_wrap=True)
        out.print(summary.line(), highlight=False, soft_wrap=True)
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def collect(
    config_file: Annotated[Path, typer.Option("--config", "-c", help="The collector's YAML file (see deploy/)")],
    check: Annotated[bool, typer.Option("--check", help="Only validate the file; report every problem")] = False,
) -> None:
    """Run the sources of a collector file until stopped (SIGTERM or Ctrl-C drains and commits)."""
    import logging
    import signal
    import threading

    from civicsoc.store import open_store
    from collectors.config import load_collector_config
    from collectors.runner import Collector

    collector_config = load_collector_config(config_file)
    if check:
        out.print(f"[green]ok[/green] {config_file}: collector {collector_config.collector_id} for tenant "
                  f"{collector_config.tenant}, {len(collector_config.sources)} sources: "
                  + ", ".join(f"{s.name} ({s.type})" for s in collector_config.sources), highlight=False)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = settings()
    if collector_config.store is not None:
        config = config.model_copy(update={"store": collector_config.store})
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with open_store(config) as store:
        collector = Collector(collector_config, store, detection=_detector(config, None, store))
        drained = collector.run(stop, ready=lambda: err.print(
            f"collector {collector_config.collector_id} running {len(collector_config.sources)} sources into "
            f"{store.url}; metrics in {collector_config.state_dir / 'metrics.json'}", highlight=False))
    if not drained:
        raise typer.Exit(3)


def _load_rules(config: Settings, extra: list[Path] | None, *, quiet: bool = False) -> Any:
    from detection.rules import load_configured_rules

    ruleset = load_configured_rules(config.rules, extra or ())
    if not quiet:
        err.print(f"rules: {len(ruleset.loaded)} loaded from {ruleset.files} files, {len(ruleset.skipped)} skipped "
                  "(civicsoc rules check lists why)", highlight=False)
    return ruleset


def _detector(config: Settings, extra: list[Path] | None, store: Any) -> Any:
    """The streaming hook of ``ingest`` and ``collect``: the same rules and playbooks as ``serve``."""
    from playbooks.loader import load_playbooks

    return _detector_with_playbooks(_load_rules(config, extra), store, load_playbooks())


class HuntFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    table = "table"


@app.command()
def hunt(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders to hunt through (no store needed)",
                                                       exists=True)] = None,
    rules: RulesOption = None,
    output: Annotated[HuntFormat, typer.Option("--format", help="Output on stdout")] = HuntFormat.jsonl,
    min_level: Annotated[Severity | None, typer.Option(help="Only matches of rules at this level or above")] = None,
    kind: Annotated[IngestType, typer.Option("--type", help="Input kind of the files")] = IngestType.auto,
    store_url: Annotated[str | None, typer.Option("--store", help="Hunt over this store's events instead")] = None,
    since: Annotated[str | None, typer.Option("--from", help="Store hunts: start (ISO 8601, UTC if no zone)")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Store hunts: end (ISO 8601; default now)")] = None,
    tenant: Annotated[list[str] | None, typer.Option(help="Store hunts: only these tenants (repeatable)")] = None,
) -> None:
    """Run Sigma rules over files (like Chainsaw/Hayabusa) or, with --store, over stored events.

    File hunts print one line per match on stdout and progress and a summary on stderr. Store hunts
    turn matches into alerts and incidents (de-duplicated against what the stream raised).
    """
    from detection.findings import Finding
    from detection.hunt import hunt_files

    config = settings()
    ruleset = _load_rules(config, rules)
    minimum = min_level
    if store_url or since or until:
        _hunt_store(config, ruleset, store_url, since, until, tenant, minimum)
        return
    if not paths:
        raise typer.BadParameter("give files or folders to hunt through, or --store with --from/--to")
    writer = _FindingWriter(output)

    def emit(finding: Finding) -> None:
        writer.write(finding)

    summary = hunt_files(paths, ruleset, emit, kind=None if kind == IngestType.auto else kind.value,
                         min_level=minimum)
    writer.close()
    for path, reason in summary.failed:
        err.print(f"[red]failed:[/red] {reason if path in reason else f'{path}: {reason}'}", highlight=False)
    err.print(summary.line(), highlight=False)
    if summary.failed:
        raise typer.Exit(1)


def _hunt_store(config: Settings, ruleset: Any, store_url: str | None, since: str | None, until: str | None,
                tenants: list[str] | None, minimum: Any) -> None:
    from datetime import UTC, datetime

    from civicsoc.event import parse_timestamp
    from civicsoc.store import EventQuery, Scope, TimeRange, open_store
    from detection.hunt import hunt_store

    def moment(text: str | None, name: str) -> datetime:
        if text is None:
            return datetime.now(UTC)
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise typer.BadParameter(f"{name}: expected an ISO 8601 time such as 2026-11-01T00:00Z") from None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else parse_timestamp(value.isoformat())

    if since is None:
        raise typer.BadParameter("--from: a store hunt needs a start time")
    if store_url:
        state.store = store_url
        config = settings()
    window = TimeRange(moment(since, "--from"), moment(until, "--to"))
    scope = Scope.of(*[_tenant(t) for t in tenants]) if tenants else Scope.all()
    with open_store(config) as store:
        summary = hunt_store(store, scope, EventQuery(window), ruleset, min_level=minimum)
    out.print(f"hunted {summary.events} events of {store.url} in {summary.seconds:.1f} s: {summary.matches} matches, "
              f"{summary.alerts_created} new alerts, {summary.alerts_known} already raised", highlight=False)


class _FindingWriter:
    def __init__(self, kind: HuntFormat) -> None:
        import csv

        self.kind = kind
        self.rows: list[list[str]] = []
        self.csv = csv.writer(sys.stdout) if kind == HuntFormat.csv else None
        if self.csv is not None:
            self.csv.writerow(["timestamp", "rule_level", "rule_title", "rule_id", "event_id", "source",
                               "record_id", "host", "events"])

    def write(self, finding: Any) -> None:
        import orjson

        first = finding.first
        record_id = first.get("winlog.record_id") or first.get("log.offset")
        if self.kind == HuntFormat.jsonl:
            row = {"rule": {"id": finding.rule.id, "title": finding.rule.title, "level": finding.rule.level,
                            "tags": list(finding.rule.tags)},
                   "@timestamp": first.fields["@timestamp"], "event.id": first.id, "source": finding.source,
                   "record_id": record_id, "event_ids": [e.id for e in finding.events], "event": first.fields}
            sys.stdout.write(orjson.dumps(row, default=str).decode() + "\n")
            return
        values = [first.fields["@timestamp"], finding.rule.level or "", finding.rule.title, finding.rule.id, first.id,
                  finding.source or "", str(record_id or ""), str(first.get("host.name") or ""),
                  str(len(finding.events))]
        if self.csv is not None:
            self.csv.writerow(values)
        else:
            self.rows.append(values)

    def close(self) -> None:
        if self.kind == HuntFormat.table:
            table = Table("time", "level", "rule", "host", "source", "record")
            for values in self.rows:
                table.add_row(values[0], values[1], values[2], values[7], values[5], values[6])
            out.print(table)
        sys.stdout.flush()


@rules_app.command("check")
def rules_check(
    paths: Annotated[list[Path], typer.Argument(help="Rule files or folders", exists=True)],
    as_json: Annotated[bool, typer.Option("--json", help="Per-rule results as JSON lines")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list every loaded rule")] = False,
) -> None:
    """Load rules as the engine does and report each: loaded, or skipped with the reason."""
    import orjson

    from detection.rules import load_rules

    config = settings()
    ruleset = load_rules(paths, placeholders=config.rules.placeholders or None)
    for skipped in ruleset.skipped:
        if as_json:
            out.print(orjson.dumps({"file": str(skipped.file), "id": skipped.rule_id, "title": skipped.title,
                                    "status": "skipped", "reason": skipped.reason}).decode(), highlight=False)
        else:
            out.print(f"skipped {skipped.file}{f' ({skipped.rule_id})' if skipped.rule_id else ''}: {skipped.reason}",
                      highlight=False, markup=False)
    for rule in ruleset.loaded if (verbose or as_json) else ():
        if as_json:
            out.print(orjson.dumps({"file": str(rule.path), "id": rule.id, "title": rule.title,
                                    "status": "loaded"}).decode(), highlight=False)
        else:
            out.print(f"loaded {rule.path}: {rule.id} {rule.title}", highlight=False, markup=False)
    err.print(f"{ruleset.files} files: {len(ruleset.loaded)} rules loaded ({len(ruleset.correlations)} correlations), "
              f"{len(ruleset.skipped)} skipped", highlight=False)
    if ruleset.skipped and not ruleset.loaded:
        raise typer.Exit(1)


def _tenant(name: str) -> str:
    import re

    from civicsoc.config import TENANT_PATTERN
    from civicsoc.errors import ConfigError

    if not re.match(TENANT_PATTERN, name):
        raise ConfigError([f"tenant {name!r}: expected lowercase letters, digits, '_' and '-' (at most 63)"])
    return name


@store_app.command("check")
def store_check(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Connect, create what the store needs, and report what it holds."""
    from civicsoc.store import Scope, open_store

    config = settings()
    with open_store(config) as store:
        scope = Scope.all()
        from civicsoc.store import RecordQuery

        report: dict[str, Any] = {
            "store": store.url,
            "backend": type(store).__name__,
            "alerts": store.alerts.count(scope, RecordQuery()),
            "incidents": store.incidents.count(scope, RecordQuery()),
        }
    if as_json:
        out.print_json(json.dumps(report))
        return
    out.print(f"[green]ok[/green] {report['backend']} at {report['store']}: "
              f"{report['alerts']} alerts, {report['incidents']} incidents")


@store_app.command("retention")
def store_retention(
    days: Annotated[int | None, typer.Option(min=1, help="Keep this many days (default: store.retention_days)")] = None,
) -> None:
    """Delete events of whole UTC days older than the retention period."""
    from civicsoc.store import open_store

    config = settings()
    keep = days or config.store.retention_days
    with open_store(config) as store:
        result = store.apply_retention(keep)
    out.print(f"retention {keep} days: cutoff {result.cutoff.date().isoformat()}, removed {len(result.removed)}"
              + (f": {', '.join(result.removed)}" if result.removed else ""))


@config_app.command("show")
def config_show() -> None:
    """Print the effective configuration (secrets masked)."""
    config = settings()
    table = Table("key", "value", show_header=True)
    for key, value in _flatten(config.model_dump(mode="json")).items():
        table.add_row(key, "" if value is None else str(value))
    table.add_row("(effective store URL)", config.store_url)
    out.print(table)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def main() -> None:
    """Console-script entry point: turns civicsoc's own errors into one line and exit status 2."""
    try:
        app()
    except ConfigError as exc:
        if len(exc.problems) == 1:
            err.print(f"[red]error:[/red] invalid configuration: {exc.problems[0]}", highlight=False)
        else:
            err.print(f"[red]error:[/red] invalid configuration, {len(exc.problems)} problems:", highlight=False)
            for problem in exc.problems:
                err.print(f"  {problem}", highlight=False)
        sys.exit(2)
    except CivicsocError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
