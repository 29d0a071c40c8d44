"""Plain functions the Dagster assets and the CLI call: load config, tick one journey, dispatch.

The governance gate (crmflow/governance, docs/journeys.md "Governance") decides which journeys run:
a journey whose current version is not approved, or that a launcher disabled, is not ticked (one
`skipped` decision says why) and none of its planned messages is dispatched; while the caps and
channels settings (channels.yaml, policies.yaml) are not approved by a launcher, dispatch holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.channels.base import Channel
from crmflow.governance.approvals import Gate, record_skipped_tick
from crmflow.governance.roles import Governance, load_governance
from crmflow.governance.settings_approval import settings_gate
from crmflow.governance.subjects import journey_gate
from crmflow.journeys.columns import profile_columns, table_exists
from crmflow.journeys.dispatch import DispatchReport, dispatch, lock_path_for
from crmflow.journeys.engine import TickReport, prepare_tick, run_tick
from crmflow.journeys.loader import LoadedJourney, journey_files, load_journey_file
from crmflow.journeys.policy_config import Policies, load_policies
from crmflow.journeys.refs import ConfigRefs, load_refs
from crmflow.journeys.schema import Journey
from crmflow.warehouse import Warehouse


class JourneyInvalidError(ValueError):
    """A journey file failed validation; the message lists every error as file:line: field: reason."""


@dataclass(frozen=True)
class JourneyConfig:
    marketing_dir: Path

    @property
    def journeys_dir(self) -> Path:
        return self.marketing_dir / "journeys"

    def policies(self) -> Policies:
        return load_policies(self.marketing_dir / "policies.yaml")

    def refs(self) -> ConfigRefs:
        return load_refs(self.marketing_dir)

    def governance(self) -> Governance:
        return load_governance(self.marketing_dir)

    def gate(self, con: Warehouse | Any, path: Path, journey: Journey) -> Gate:
        """May this journey file, at its current version, run now (approved and not disabled)?"""
        return journey_gate(prepare_tick(con), self.governance(), path, journey.id, self.marketing_dir)

    def settings_gate(self, con: Warehouse | Any) -> Gate:
        """May dispatch send with channels.yaml and policies.yaml as they are now (a launcher approved them)?"""
        return settings_gate(prepare_tick(con), self.governance(), self.marketing_dir)

    def load(self, path: Path, con: Warehouse | Any | None = None) -> LoadedJourney:
        columns = profile_columns(con) if con is not None else None
        return load_journey_file(path, columns, self.policies().sms_max_segments, self.refs())

    def load_valid(self, con: Warehouse | Any | None = None) -> dict[str, Journey]:
        out: dict[str, Journey] = {}
        for path in journey_files(self.journeys_dir):
            loaded = self.load(path, con)
            if loaded.ok and loaded.journey is not None:
                out[loaded.journey.id] = loaded.journey
        return out


def gated_tick(con: Warehouse | Any, config: JourneyConfig, path: Path, as_of: datetime) -> tuple[TickReport, Gate]:
    """One tick of a journey file if the governance gate lets it run; else only the skip is recorded."""
    loaded = config.load(path, con if table_exists(con, "customer_profile") else None)
    if not loaded.ok or loaded.journey is None:
        raise JourneyInvalidError(f"journey file {path.name} is invalid:\n{loaded.error_text()}")
    decision = config.gate(con, path, loaded.journey)
    if not decision.runs:
        wh = prepare_tick(con)
        with wh.transaction():
            record_skipped_tick(wh, loaded.journey.id, as_of, decision)
        return TickReport(loaded.journey.id, as_of, skipped_reason=decision.decision_reason,
                          notes=[decision.reason]), decision
    return run_tick(con, loaded.journey, as_of, config.policies().default_timezone), decision


def tick_journey_file(con: Warehouse | Any, config: JourneyConfig, path: Path,
                      as_of: datetime) -> TickReport:
    return gated_tick(con, config, path, as_of)[0]


def dispatch_all(con: Warehouse | Any, config: JourneyConfig, as_of: datetime,
                 channels: Mapping[str, Channel], warehouse_path: Path | None, workers: int = 1) -> DispatchReport:
    settings = config.settings_gate(con)
    if not settings.runs:  # unapproved caps/channels: hold, change nothing (planned rows wait)
        return DispatchReport(settings=settings.state, held=settings.reason)
    valid = config.load_valid(con if table_exists(con, "customer_profile") else None)
    files = {f.stem: f for f in journey_files(config.journeys_dir)}
    # Only journeys the gate lets run are dispatched: an unapproved version's planned rows wait.
    journeys = {jid: j for jid, j in valid.items() if jid in files and config.gate(con, files[jid], j).runs}
    lock = lock_path_for(warehouse_path) if warehouse_path is not None else None
    report = dispatch(con, as_of, channels, journeys, config.policies(), lock, workers=workers)
    report.settings = settings.state
    return report
