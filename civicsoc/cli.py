"""The ``civicsoc`` command.

Every subcommand reads the same configuration (``--config``, environment, ``--store``) and any
``CivicsocError`` ends the command with one line on stderr and exit status 2: agency IT sees what to
fix, not a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from civicsoc import __version__
from civicsoc.config import Settings, load_settings
from civicsoc.errors import CivicsocError

app = typer.Typer(
    name="civicsoc",
    help="Security monitoring for public-sector agencies: collect, detect, triage, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
store_app = typer.Typer(help="Inspect and maintain the event store.", no_args_is_help=True)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
app.add_typer(store_app, name="store")
app.add_typer(config_app, name="config")

out = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (default: $CIVICSOC_CONFIG or ./civicsoc.yaml)")
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
) -> None:
    """Run the API service on the configured store (the embedded SQLite store by default)."""
    import uvicorn

    from api.app import create_app
    from civicsoc.store import open_store

    config = settings()
    store = open_store(config)
    bind_host, bind_port = host or config.api.host, port or config.api.port
    err.print(f"civicsoc {__version__}: store {store.url}")
    err.print(f"API on http://{bind_host}:{bind_port}  (health: /healthz, docs: /docs)")
    try:
        uvicorn.run(create_app(store), host=bind_host, port=bind_port, log_level="info")
    finally:
        store.close()


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
        import json

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
    except CivicsocError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
