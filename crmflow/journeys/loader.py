"""Load journey YAML files and report every mistake as file:line, field and reason.

The shared marketer-YAML loader (crmflow/yaml_config.py) maps pydantic errors back to YAML lines;
semantic checks (step references, templates, profile columns, names in other config) report through
the same map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from crmflow.journeys.columns import PROFILE_COLUMN_TYPES
from crmflow.journeys.refs import ConfigRefs
from crmflow.journeys.schema import Journey
from crmflow.journeys.validate import reference_problems, semantic_errors
from crmflow.yaml_config import ConfigProblem, parse_yaml_model

Loc = tuple[str | int, ...]


JourneyError = ConfigProblem  # path, line, field, message; str() is 'file:line: field: message'


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


def parse_journey_text(text: str, path: Path, columns: dict[str, str] | None = None,
                       max_sms_segments: int = 3, refs: ConfigRefs | None = None) -> LoadedJourney:
    """Every problem of one journey file, through the shared marketer-YAML loader (crmflow/yaml_config.py).
    refs: names in other config to check references against (segments, tags, banners, task queues,
    order statuses); None skips those checks (crafted test journeys)."""
    def checks(journey: Journey) -> list[tuple[Loc, str]]:
        found = semantic_errors(journey, path.stem, columns or dict(PROFILE_COLUMN_TYPES), max_sms_segments)
        return found + (reference_problems(journey, refs)[0] if refs is not None else [])

    parsed = parse_yaml_model(text, path, Journey, checks)
    warnings: list[JourneyError] = []
    if parsed.model is not None and refs is not None:
        warnings = [parsed.lines.problem(path, loc, message) for loc, message in reference_problems(parsed.model, refs)[1]]
        warnings += [JourneyError(str(path), 1, "", problem) for problem in refs.problems]
    return LoadedJourney(path, path.stem, parsed.model, parsed.problems,
                         sorted(warnings, key=lambda w: (w.line, w.field, w.message)))


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
