"""Load journey YAML files and report every mistake as file:line, field and reason.

pydantic error locations are mapped back to YAML lines through the composed node tree (yaml's node
marks); semantic checks (step references, templates, profile columns) report through the same map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from crmflow.journeys.columns import PROFILE_COLUMN_TYPES
from crmflow.journeys.refs import ConfigRefs
from crmflow.journeys.schema import Journey
from crmflow.journeys.validate import reference_problems, semantic_errors
from crmflow.yaml_config import YamlLineMap

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class JourneyError:
    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f" {self.field}:" if self.field else ""
        return f"{self.path}:{self.line}:{where} {self.message}"


@dataclass
class LoadedJourney:
    path: Path
    key: str  # the file stem: the asset key even when the file does not parse
    journey: Journey | None
    errors: list[JourneyError] = field(default_factory=list)
    # Suspicious but possibly right (e.g. a tag no rule defines: it may be a manual tag); never fails.
    warnings: list[JourneyError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.journey is not None and not self.errors

    def error_text(self) -> str:
        return "\n".join(str(e) for e in self.errors)


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


def _pydantic_message(err: dict[str, Any]) -> str:
    kind = err["type"]
    loc = err["loc"]
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r} (not allowed here; check the spelling)"
    if kind == "missing":
        return f"required field {loc[-1]!r} is missing"
    if kind == "union_tag_invalid":
        expected = err.get("ctx", {}).get("expected_tags", "")
        return f"unknown type {err.get('ctx', {}).get('tag')!r}; expected one of {expected}"
    if kind == "union_tag_not_found":
        return "missing 'type' (which kind of step/trigger this is)"
    message = str(err["msg"])
    return message.removeprefix("Value error, ")


def parse_journey_text(text: str, path: Path, columns: dict[str, str] | None = None,
                       max_sms_segments: int = 3, refs: ConfigRefs | None = None) -> LoadedJourney:
    """refs: names in other config to check references against (segments, tags, banners, task
    queues, order statuses); None skips those checks (crafted test journeys)."""
    key = path.stem
    shown = str(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return LoadedJourney(path, key, None, [JourneyError(shown, line, "", f"YAML syntax error: {exc.problem}")])
    if not isinstance(data, dict):
        return LoadedJourney(path, key, None, [JourneyError(shown, 1, "", "a journey file must be a YAML mapping")])
    lines = YamlLineMap(root)
    errors: list[JourneyError] = []
    dups: list[tuple[int, str]] = []
    _duplicate_keys(root, dups)
    errors.extend(JourneyError(shown, line, "", msg) for line, msg in dups)
    try:
        journey = Journey.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            line, field_path = lines.locate(tuple(err["loc"]))
            errors.append(JourneyError(shown, line, field_path, _pydantic_message(err)))
        return LoadedJourney(path, key, None, _sorted(errors))
    for loc, message in semantic_errors(journey, key, columns or dict(PROFILE_COLUMN_TYPES), max_sms_segments):
        line, field_path = lines.locate(loc)
        errors.append(JourneyError(shown, line, field_path, message))
    warnings: list[JourneyError] = []
    if refs is not None:
        ref_errors, ref_warnings = reference_problems(journey, refs)
        for loc, message in ref_errors:
            errors.append(JourneyError(shown, *lines.locate(loc), message))
        warnings = [JourneyError(shown, *lines.locate(loc), message) for loc, message in ref_warnings]
        warnings += [JourneyError(shown, 1, "", problem) for problem in refs.problems]
    return LoadedJourney(path, key, journey if not errors else None, _sorted(errors), _sorted(warnings))


def _sorted(errors: list[JourneyError]) -> list[JourneyError]:
    return sorted(errors, key=lambda e: (e.line, e.field, e.message))


def load_journey_file(path: Path, columns: dict[str, str] | None = None, max_sms_segments: int = 3,
                      refs: ConfigRefs | None = None) -> LoadedJourney:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return LoadedJourney(path, path.stem, None, [JourneyError(str(path), 1, "", f"cannot read file: {exc}")])
    return parse_journey_text(text, path, columns, max_sms_segments, refs)


def journey_files(directory: Path) -> list[Path]:
    if directory.is_file():
        return [directory]
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_journeys(directory: Path, columns: dict[str, str] | None = None,
                  max_sms_segments: int = 3, refs: ConfigRefs | None = None) -> list[LoadedJourney]:
    return [load_journey_file(p, columns, max_sms_segments, refs) for p in journey_files(directory)]
