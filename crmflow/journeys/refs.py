"""Names a journey may reference in other config: segments (dbt seed segment_definitions.csv), rule
tags (tags.yaml), banner slots/creatives (banners.yaml), task queues/rules (task_rules.yaml) and order
statuses (the source contract). Loaded through each file's own loader and cached by modification time,
so validating many journeys reads each file once.

A config file that is absent is not checked against (a test or a deployment without banners simply has
no banner names to compare with); one that fails to load is reported as a warning, since its own
validator (`crmflow banners check`, `crmflow tags check`, ...) names the actual mistake.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from connectors.sources.contracts import ORDER_STATUSES
from crmflow.settings import REPO_ROOT

SEGMENT_SEED = REPO_ROOT / "dbt_project" / "seeds" / "segment_definitions.csv"


@dataclass(frozen=True)
class ConfigRefs:
    # family -> exact segment names, and family -> patterns for placeholders such as cluster_<id>
    segments: dict[str, frozenset[str]]
    segment_patterns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    order_statuses: frozenset[str] = frozenset(ORDER_STATUSES)
    rule_tags: frozenset[str] | None = None  # None: no tags.yaml to check against
    banner_slots: dict[str, frozenset[str]] | None = None  # slot -> its creatives
    banner_creatives: dict[str, str] | None = None  # creative -> its slot
    task_queues: frozenset[str] | None = None
    task_rules: frozenset[str] | None = None
    problems: tuple[str, ...] = ()  # config files that exist but failed to load

    def segment_known(self, family: str, segment: str) -> bool:
        if segment in self.segments.get(family, ()):
            return True
        return any(re.fullmatch(_placeholder_regex(p), segment) for p in self.segment_patterns.get(family, ()))

    def family_segments(self, family: str) -> list[str]:
        return sorted(self.segments.get(family, ())) + list(self.segment_patterns.get(family, ()))


def _placeholder_regex(name: str) -> str:
    """'cluster_<id>' -> a regex matching cluster_3, cluster_big_spenders, ..."""
    return "[A-Za-z0-9_]+".join(re.escape(part) for part in re.split(r"<[^>]+>", name))


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns if path.exists() else -1


@lru_cache(maxsize=8)
def _segments(path: str, _mtime_ns: int) -> tuple[dict[str, frozenset[str]], dict[str, tuple[str, ...]]]:
    exact: dict[str, set[str]] = {}
    patterns: dict[str, list[str]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            family, segment = row["segment_family"], row["segment"]
            exact.setdefault(family, set())
            if "<" in segment:  # a placeholder such as cluster_<id>: any id
                patterns.setdefault(family, []).append(segment)
            else:
                exact[family].add(segment)
    return {k: frozenset(v) for k, v in exact.items()}, {k: tuple(v) for k, v in patterns.items()}


@lru_cache(maxsize=8)
def _marketing_refs(directory: str, _mtimes: tuple[int, int, int]) -> tuple[
        frozenset[str] | None, dict[str, frozenset[str]] | None, dict[str, str] | None,
        frozenset[str] | None, frozenset[str] | None, tuple[str, ...]]:
    # Imported here: the banner/task/tag packages are only needed when their files exist.
    from crmflow.banners.config import load_banner_config
    from crmflow.tags import load_tags_config
    from crmflow.tasks.config import load_task_rules

    base = Path(directory)
    problems: list[str] = []
    tags = slots = creatives = queues = rules = None
    if (base / "tags.yaml").exists():
        try:
            tags = frozenset(t.name for t in load_tags_config(base / "tags.yaml").tags)
        except ValueError as exc:
            problems.append(f"tags not checked: {exc}")
    if (base / "banners.yaml").exists():
        try:
            banners = load_banner_config(base / "banners.yaml")
            creatives = {c.id: c.slot for c in banners.creatives}
            slots = {s.id: frozenset(c for c, slot in creatives.items() if slot == s.id) for s in banners.slots}
        except ValueError as exc:
            problems.append(f"banner slots/creatives not checked: {exc}")
    if (base / "task_rules.yaml").exists():
        try:
            task_rules = load_task_rules(base / "task_rules.yaml")
            queues = frozenset(task_rules.journey_queues)
            rules = frozenset(r.id for r in task_rules.rules)
        except ValueError as exc:
            problems.append(f"task queues/rules not checked: {exc}")
    return tags, slots, creatives, queues, rules, tuple(problems)


def load_refs(marketing_dir: Path | None, segment_seed: Path = SEGMENT_SEED) -> ConfigRefs:
    """The names to check against; with marketing_dir None only segments and order statuses."""
    segments, patterns = _segments(str(segment_seed), _mtime(segment_seed)) if segment_seed.exists() else ({}, {})
    if marketing_dir is None:
        return ConfigRefs(segments, patterns)
    files = tuple(_mtime(marketing_dir / n) for n in ("tags.yaml", "banners.yaml", "task_rules.yaml"))
    tags, slots, creatives, queues, rules, problems = _marketing_refs(str(marketing_dir), files)
    return ConfigRefs(segments, patterns, rule_tags=tags, banner_slots=slots, banner_creatives=creatives,
                      task_queues=queues, task_rules=rules, problems=problems)
