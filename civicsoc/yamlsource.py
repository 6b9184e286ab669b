"""YAML files whose errors point at a line: load once, keep the node tree to map a pydantic error's
location (``("sources", 1, "paths")``) back to ``file:line`` and a readable path ``sources[1].paths``.

Used by every YAML civicsoc reads from users (collector configs, and later rules and playbooks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class YamlDocument:
    path: Path
    data: Any
    root: yaml.Node | None

    @classmethod
    def load(cls, path: Path) -> YamlDocument:
        """Parse ``path``; a syntax error becomes ``ValueError`` naming ``file:line:column``."""
        text = path.read_text(encoding="utf-8")
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            raise ValueError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
        return cls(path, data, root)

    def line_of(self, location: Sequence[str | int]) -> int | None:
        """The 1-based line of the deepest node on ``location`` that exists in the file."""
        node = self.root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in location:
            if isinstance(node, yaml.MappingNode):
                node = next((value for key, value in node.value if key.value == str(part)), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
            else:
                node = None
            if node is None:
                break
            line = node.start_mark.line + 1
        return line

    def describe(self, location: Sequence[str | int]) -> str:
        """``collector.yaml:12: sources[1].paths``."""
        readable = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
        line = self.line_of(location)
        return f"{self.path}:{line}: {readable or '(top)'}" if line else f"{self.path}: {readable}"
