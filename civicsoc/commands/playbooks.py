"""``civicsoc playbooks``: validate playbook files, list what is loaded, exchange playbooks as CACAO v2.0 JSON.

``check`` reports every file (ok, or each problem with file:line and the path inside the document) and
exits 1 if any file has a problem, so it can gate a CI job on an agency's playbook repository.
``export`` and ``import`` convert to and from CACAO (``playbooks.cacao``); their problems are one line each
(file and JSON path) and exit 2, and ``import`` writes nothing unless every file converts.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
import yaml
from rich.console import Console
from rich.table import Column, Table

if TYPE_CHECKING:
    from playbooks.model import Playbook

playbooks_app = typer.Typer(help="Validate, list, export and import response playbooks.", no_args_is_help=True)

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


class ExportFormat(StrEnum):
    cacao = "cacao"


def _fail(problems: list[str]) -> typer.Exit:
    for problem in problems:
        err.print(problem, highlight=False, markup=False)
    return typer.Exit(2)


@playbooks_app.command("export")
def export(
    out_dir: Annotated[str, typer.Option("--out", help="Folder for <id>-<version>.cacao.json files, or - for "
                                                       "standard output (one JSON document per line)")],
    ids: Annotated[list[str] | None, typer.Argument(help="Playbook ids (default: every loaded playbook)")] = None,
    export_format: Annotated[ExportFormat, typer.Option("--format", help="Output format")] = ExportFormat.cacao,
    paths: Annotated[list[Path] | None, typer.Option("--playbooks", "-p", help="Extra playbook files or folders",
                                                     exists=True)] = None,
    builtin: BuiltinOption = True,
) -> None:
    """Export playbooks as CACAO v2.0 JSON (the OASIS playbook standard) for SOAR tools.

    Every version of each named playbook (all playbooks when none is named); re-exporting an unchanged
    playbook gives a byte-identical file, and an existing file of the same name is replaced.
    """
    from playbooks.cacao import cacao_file_name, to_cacao
    from playbooks.loader import PlaybookLoadError, load_playbooks

    try:
        library = load_playbooks(paths, builtin=builtin)
    except PlaybookLoadError as exc:
        raise _fail(exc.problems) from None
    unknown = [name for name in ids or () if name not in library.ids]
    if unknown:
        raise _fail([f"unknown playbook {name!r} (loaded: {', '.join(library.ids)})" for name in unknown])
    chosen = [playbook for playbook in library if not ids or playbook.id in ids]
    if out_dir == "-":
        for playbook in chosen:
            typer.echo(json.dumps(to_cacao(playbook), ensure_ascii=False))
        return
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise _fail([f"{folder}: not a folder: --out takes a folder (or - for standard output)"])
    folder.mkdir(parents=True, exist_ok=True)
    for playbook in chosen:
        target = folder / cacao_file_name(playbook)
        target.write_text(json.dumps(to_cacao(playbook), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        out.print(f"wrote {target}: {playbook.id} {playbook.version} ({len(playbook.steps)} steps)", highlight=False,
                  markup=False)
    err.print(f"{len(chosen)} playbooks exported as {export_format.value}", highlight=False)


@playbooks_app.command("import")
def import_cacao(
    files: Annotated[list[Path], typer.Argument(help="CACAO v2.0 playbook files (JSON)")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write <id>-<version>.yml playbooks into")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite playbook files that exist already")] = False,
) -> None:
    """Convert CACAO v2.0 playbooks into civicsoc playbook YAML (which `playbooks check` accepts).

    All or nothing: any problem (unreadable file, invalid JSON or CACAO, an existing output file without
    --force, two inputs with the same id and version) is printed as one line and nothing is written.
    """
    from playbooks.cacao import CacaoError, from_cacao

    problems: list[str] = []
    planned: dict[Path, tuple[Path, Playbook]] = {}
    for path in files:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read ({exc})")
            continue
        try:
            playbook = from_cacao(document, source=path)
        except CacaoError as exc:
            problems.extend(exc.problems)
            continue
        target = out_dir / f"{playbook.id}-{playbook.version}.yml"
        if target in planned:
            problems.append(f"{path}: playbook {playbook.id!r} version {playbook.version!r} is also in "
                            f"{planned[target][0]}; both would be written to {target}")
        elif target.exists() and not force:
            problems.append(f"{target}: exists already (from {path}); pass --force to overwrite it")
        else:
            planned[target] = (path, playbook)
    if problems:
        raise _fail(problems)
    out_dir.mkdir(parents=True, exist_ok=True)
    for target, (path, playbook) in planned.items():
        target.write_text(playbook_yaml(playbook, origin=path), encoding="utf-8")
        out.print(f"wrote {target}: {playbook.id} {playbook.version} ({len(playbook.steps)} steps) from {path}",
                  highlight=False, markup=False)


class _PlaybookDumper(yaml.SafeDumper):
    """Multi-line text as literal blocks (``|``), the way the shipped playbooks write instructions."""


def _represent_text(dumper: yaml.SafeDumper, value: str) -> Any:
    # PyYAML falls back to a quoted style by itself where a block cannot hold the text (e.g. trailing spaces).
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_PlaybookDumper.add_representer(str, _represent_text)


def playbook_yaml(playbook: Playbook, *, origin: Path | None = None) -> str:
    """A playbook as the YAML file format (``playbooks/schema.json``), keys in the documented order."""
    header = f"# imported from {origin.name} (CACAO v2.0)\n" if origin is not None else ""
    return header + yaml.dump(playbook.to_dict(), Dumper=_PlaybookDumper, sort_keys=False, allow_unicode=True,
                              width=120, default_flow_style=False)
