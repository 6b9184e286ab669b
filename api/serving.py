"""The app as ``civicsoc serve`` runs it: in its own process, or in several worker processes.

One Python process runs Python code on one core at a time (the GIL), however many requests it has in
flight; a regional SOC with many analysts on an Elasticsearch cluster needs more than one.
``civicsoc serve --workers N`` keeps the streaming pipeline and the syslog receiver in the main
process (one writer, one first-start token) and lets uvicorn run N API processes, each building the
app here from the same configuration.
uvicorn starts workers by importing a factory by name, without arguments, so what the main process
was told on its command line reaches them in one environment variable (``WORKER_ENV``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from api.app import create_app, freeze_long_lived_objects
from civicsoc.config import Settings, load_settings
from civicsoc.store import Store, open_store

WORKER_ENV = "CIVICSOC_SERVE_WORKER"
"""JSON: the main process's config file, store URL override and extra rule paths."""


def served_app(config: Settings, store: Store, ruleset: Any, library: Any) -> FastAPI:
    """The app with everything ``civicsoc serve`` gives it, its long-lived objects left out of GC."""
    from reports.redaction import load_key

    app = create_app(store, ruleset=ruleset, playbooks=library)
    app.state.services.extra["redaction_key"] = load_key(config.data_dir)
    freeze_long_lived_objects()
    return app


def worker_environment(config_file: Path | None, store_url: str | None, rules: list[Path] | None) -> dict[str, str]:
    """What a worker needs to build the same app as the main process (``build_worker_app``)."""
    options = {"config": str(config_file) if config_file else None, "store": store_url,
               "rules": [str(path) for path in rules or []]}
    return {WORKER_ENV: json.dumps(options)}


def build_worker_app() -> FastAPI:
    """uvicorn's factory in each worker process (``api.serving:build_worker_app``).

    The main process has already set the store up and issued the first-start token; a worker only
    opens the store and loads the rules and playbooks.
    """
    from detection.rules import load_configured_rules
    from playbooks.loader import load_playbooks

    try:
        options = json.loads(os.environ[WORKER_ENV])
    except (KeyError, ValueError):
        raise SystemExit(f"civicsoc: {WORKER_ENV} is missing or not JSON; API workers are started by "
                         "`civicsoc serve --workers N`") from None
    config = load_settings(options["config"], overrides={"store.url": options["store"]})
    store = open_store(config, setup=False)
    ruleset = load_configured_rules(config.rules, [Path(path) for path in options["rules"]])
    return served_app(config, store, ruleset, load_playbooks())
