"""Load a marketer YAML file into a pydantic model; errors name the file and the field path."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigFileError(ValueError):
    """A marketer config file is missing, not YAML, or does not match its schema."""


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
    """'field.path: reason (line N)' per error; lines mapped through the journey loader's YAML map."""
    from crmflow.journeys.loader import _LineMap

    lines = _LineMap(root)
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']} (line {lines.locate(tuple(err['loc']))[0]})"
        for err in exc.errors()
    )
