"""The one loader for marketer YAML (journeys, banners, operators, task rules, tags, policies).

`load_yaml_model` reads a file, keeps each node's line, validates with a pydantic model
(extra="forbid": a typo is an error) plus optional checks the schema cannot express, and raises one
line: `file:line: field: message` for each problem, joined with "; ". `parse_yaml_model` is the same
without raising (the journey loader collects every problem of every journey file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from crmflow.errors import CrmflowUserError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[Any, ...]
# Checks beyond the schema: (location in the YAML, message) for each problem of a validated model.
Checks = Callable[[Any], list[tuple[Loc, str]]]


class ConfigFileError(CrmflowUserError):
    """A marketer config file is missing, not YAML, or does not match its schema."""


@dataclass(frozen=True)
class ConfigProblem:
    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f" {self.field}:" if self.field else ""
        return f"{self.path}:{self.line}:{where} {self.message}"


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

    def problem(self, path: Path | str, loc: Loc, message: str) -> ConfigProblem:
        return ConfigProblem(str(path), *self.locate(loc), message)


def pydantic_message(err: Any) -> str:
    """A validation error in the marketer's words."""
    kind = err["type"]
    loc = err["loc"]
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r} (not allowed here; check the spelling)"
    if kind == "missing":
        return f"required field {loc[-1]!r} is missing"
    ctx = err.get("ctx", {})
    tag = str(ctx.get("discriminator", "'type'")).strip("'")  # the key that says which kind this is
    if kind == "union_tag_invalid":
        return f"unknown {tag} {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags', '')}"
    if kind == "union_tag_not_found":
        return f"missing {tag!r} (which kind of {'step/trigger' if tag == 'type' else tag} this is)"
    return str(err["msg"]).removeprefix("Value error, ")


def _duplicate_keys(node: yaml.Node | None, out: list[tuple[int, str]]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if str(key.value) in seen:
                out.append((key.start_mark.line + 1, f"duplicate key {key.value!r}"))
            seen.add(str(key.value))
            _duplicate_keys(value, out)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _duplicate_keys(item, out)


@dataclass
class ParsedYaml:
    model: Any  # the validated model, None when any problem was found
    problems: list[ConfigProblem]
    lines: YamlLineMap


def parse_yaml_model(text: str, path: Path | str, model: type[M], checks: Checks | None = None) -> ParsedYaml:
    """Every problem of one YAML text (syntax, duplicate keys, schema, `checks`), sorted by line."""
    shown = str(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        return ParsedYaml(None, [ConfigProblem(shown, mark.line + 1 if mark else 1, "",
                                               f"not valid YAML: {problem}")], YamlLineMap(None))
    lines = YamlLineMap(root)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return ParsedYaml(None, [ConfigProblem(shown, 1, "", "the file must be a YAML mapping (key: value)")], lines)
    dups: list[tuple[int, str]] = []
    _duplicate_keys(root, dups)
    problems = [ConfigProblem(shown, line, "", message) for line, message in dups]
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        problems += [lines.problem(shown, tuple(err["loc"]), pydantic_message(err)) for err in exc.errors()]
        return ParsedYaml(None, _sorted(problems), lines)
    problems += [lines.problem(shown, loc, message) for loc, message in (checks(value) if checks else [])]
    return ParsedYaml(None if problems else value, _sorted(problems), lines)


def _sorted(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return sorted(problems, key=lambda p: (p.line, p.field, p.message))


def load_yaml_model(path: Path, model: type[M], checks: Checks | None = None,
                    if_missing: Callable[[], M] | None = None, error: type[ConfigFileError] = ConfigFileError) -> M:
    """The validated model of one file, or `error` naming file:line: field: message for each problem.
    if_missing: the value of a file that does not exist (else that is an error)."""
    path = Path(path)
    if not path.exists():
        if if_missing is not None:
            return if_missing()
        raise error(f"{path}:1: file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}:1: cannot read file: {exc}") from None
    parsed = parse_yaml_model(text, path, model, checks)
    if parsed.problems:
        raise error("; ".join(str(p) for p in parsed.problems))
    return parsed.model


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """' (line N)' of a YAML syntax error; connectors/channels/config.py still formats its own message."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f" (line {mark.line + 1})" if mark is not None else ""


def describe_validation_errors(exc: ValidationError, root: yaml.Node | None) -> str:
    """'field.path: reason (line N)' for every error, for connectors/channels/config.py until it calls
    load_yaml_model (the channels code is being rewritten separately)."""
    lines = YamlLineMap(root)
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']} (line {lines.locate(tuple(err['loc']))[0]})"
        for err in exc.errors()
    )
