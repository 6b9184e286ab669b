"""SigmaHQ regression data: each rule folder's .evtx holds events that MUST match that rule.

For every folder, its .evtx is read through the real EVTX reader (``collectors.evtx.read_evtx``) and
matched with the WHOLE SigmaHQ corpus loaded; the folder's rule must be among the matches. A failure
says why: the rule did not load (with the loader's reason), the file had no events, or which fields the
rule reads and what the events hold there (so a mapper gap shows as field and value).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from civicsoc.event import Event
from collectors.base import CollectorContext
from collectors.evtx import read_evtx
from detection.engine import IndexedEngine
from detection.fields import EventView
from detection.rules import RuleSet, load_rules

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SIGMAHQ = SHARED / "sigmahq-sigma"
REGRESSION = SHARED / "sigmahq-regression-data"
CORPUS_DIRS = ("rules", "rules-emerging-threats", "rules-threat-hunting", "rules-placeholder", "rules-compliance")
FOLDERS = sorted(info.parent for info in (REGRESSION / "regression_data").rglob("info.yml"))


@pytest.fixture(scope="module")
def corpus() -> RuleSet:
    return load_rules([SIGMAHQ / name for name in CORPUS_DIRS])


@pytest.fixture(scope="module")
def engine(corpus: RuleSet) -> IndexedEngine:
    return IndexedEngine(corpus.loaded)


def test_there_is_regression_data() -> None:
    assert len(FOLDERS) > 100


@pytest.mark.parametrize("folder", FOLDERS, ids=[folder.name for folder in FOLDERS])
def test_rule_fires_on_its_regression_events(folder: Path, corpus: RuleSet, engine: IndexedEngine) -> None:
    info = yaml.safe_load((folder / "info.yml").read_text(encoding="utf-8"))
    rule_id = str(info["rule_metadata"][0]["id"])
    rule = corpus.by_id().get(rule_id)
    if rule is None:
        reasons = [skip.reason for skip in corpus.skipped if skip.rule_id == rule_id]
        pytest.fail(f"rule {rule_id} did not load: {reasons or 'not found in the corpus'}")
    tests = [test for test in info["regression_tests_info"] if test["type"] == "evtx"]
    assert tests, f"{folder.name}: no evtx regression test in info.yml"
    context = CollectorContext(tenant="test")
    for test in tests:
        path = REGRESSION / test["path"]
        events = [item.value for item in read_evtx(path, context) if isinstance(item.value, Event)]
        assert events, f"{path}: the EVTX reader produced no events"
        if any(matched is rule for event in events for matched in engine.matching_rules(event.fields)):
            continue
        views = [EventView(event.fields) for event in events]
        seen = {field: [view.texts(field) for view in views] for field in sorted(rule.fields)}
        pytest.fail(f"{rule.title} ({rule_id}) did not match any of the {len(events)} events of {path.name}; "
                    f"the fields it reads hold: {seen}")
