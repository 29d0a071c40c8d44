"""Marketer YAML files into pydantic models, with errors that name the file, field and line.

One place maps a pydantic error location back to the YAML line it came from, so journeys, banners,
operators, task rules and channels all report mistakes the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[Any, ...]


class ConfigFileError(ValueError):
    """A marketer config file is missing, not YAML, or does not match its schema."""


class YamlLineMap:
    """Walks an error location through the YAML node tree to the best line and a readable path."""

    def __init__(self, root: yaml.Node | None):
        self.root = root

    def locate(self, loc: Loc) -> tuple[int, str]:
        node = self.root
        if node is None:
            return 1, ".".join(str(p) for p in loc)
        line = node.start_mark.line + 1
        path = ""
        for i, part in enumerate(loc):
            if isinstance(node, yaml.MappingNode):
                match = next(((k, v) for k, v in node.value if str(k.value) == str(part)), None)
                if match is not None:
                    line = match[0].start_mark.line + 1
                    node = match[1]
                    path = f"{path}.{part}" if path else str(part)
                    continue
                if i == len(loc) - 1 and isinstance(part, str):
                    path = f"{path}.{part}" if path else part  # a missing key: name it, stay on parent
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
                path = f"{path}[{part}]"
            # anything else is a pydantic-internal location part (union tag, validator): skip it
        return line, path


def load_yaml_model(path: Path, model: type[M]) -> M:
    path = Path(path)
    if not path.exists():
        raise ConfigFileError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path}: not valid YAML{yaml_error_line(exc)}: {exc}") from exc
    try:
        return model.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise ConfigFileError(f"{path}: {describe_validation_errors(exc, root)}") from exc


def yaml_error_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f" (line {mark.line + 1})" if mark is not None else ""


def describe_validation_errors(exc: ValidationError, root: yaml.Node | None) -> str:
    """'field.path: reason (line N)' for every error."""
    lines = YamlLineMap(root)
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']} (line {lines.locate(tuple(err['loc']))[0]})"
        for err in exc.errors()
    )
