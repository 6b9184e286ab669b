"""``civicsoc playbooks``: validate playbook files and list what is loaded.

``check`` reports every file (ok, or each problem with file:line and the path inside the document) and
exits 1 if any file has a problem, so it can gate a CI job on an agency's playbook repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Column, Table

playbooks_app = typer.Typer(help="Validate and list response playbooks.", no_args_is_help=True)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

BuiltinOption = Annotated[
    bool, typer.Option("--builtin/--no-builtin", help="Include the playbooks shipped with civicsoc")
]


@playbooks_app.command("check")
def check(
    paths: Annotated[list[Path] | None, typer.Argument(help="Playbook files or folders (default: the built-in ones)",
                                                       exists=True)] = None,
    builtin: BuiltinOption = True,
) -> None:
    """Validate playbooks against the schema: one line per file, every problem with file:line and path.

    Given paths are checked together with the built-in library (an id and version may be defined only
    once); --no-builtin checks the paths alone.
    """
    from playbooks.loader import check_files

    results = check_files(paths or [], builtin=builtin or not paths)
    bad = 0
    for result in results:
        if result.ok and result.playbook is not None:
            out.print(f"ok {result.path}: {result.playbook.id} {result.playbook.version} "
                      f"({len(result.playbook.steps)} steps)", highlight=False, markup=False)
            continue
        bad += 1
        out.print(f"error {result.path}: {len(result.problems)} problem(s)", highlight=False, markup=False)
        for problem in result.problems:
            out.print(f"  {problem}", highlight=False, markup=False)
    err.print(f"{len(results)} files: {len(results) - bad} ok, {bad} with errors", highlight=False)
    if bad or not results:
        raise typer.Exit(1)


@playbooks_app.command("list")
def list_playbooks(
    paths: Annotated[list[Path] | None, typer.Option("--playbooks", "-p", help="Extra playbook files or folders",
                                                     exists=True)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per playbook")] = False,
) -> None:
    """List the loaded playbooks (built-in plus --playbooks): id, version, what they apply to."""
    from playbooks.loader import load_playbooks

    library = load_playbooks(paths)
    if as_json:
        for playbook in library:
            row = {"id": playbook.id, "version": playbook.version, "title": playbook.title,
                   "applies_to": playbook.applies_to.to_dict(), "steps": len(playbook.steps),
                   "source": str(playbook.source) if playbook.source else None}
            out.print(orjson.dumps(row).decode(), highlight=False, markup=False)
        return
    table = Table(Column("id", no_wrap=True), "version", "title", "applies to", "steps")
    for playbook in library:
        wanted = playbook.applies_to
        criteria = [*wanted.techniques, *wanted.tactics, *wanted.tags, *(f"rule {r}" for r in wanted.rule_ids)]
        applies = ", ".join(criteria)
        if wanted.min_severity is not None:
            applies += f" (>= {wanted.min_severity.value})"
        table.add_row(playbook.id, playbook.version, playbook.title, applies, str(len(playbook.steps)))
    out.print(table)
