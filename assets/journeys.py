"""Journey assets: one asset per marketing/journeys/*.yaml file (journey_<file stem>, group
"journeys") and journey_dispatch after them.

The asset list comes from file names only, so Definitions load even when a YAML file is broken;
the broken journey's asset fails at run time with every validation error, the others still run.
"""

import base64
from pathlib import Path

import dagster as dg

from crmflow.journeys.loader import journey_files, load_journey_file
from crmflow.journeys.render import journey_counts, render_html, render_svg
from crmflow.journeys.runner import JourneyConfig, JourneyInvalidError, dispatch_all, gated_tick
from orchestration.asof import as_of_from_context
from orchestration.lineage import exposure_deps
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.resources_journeys import JourneyChannelsResource

# What a journey tick reads (the marts, events, this run's clusters and recommendations): the dbt
# exposure journey_ticks (dbt_project/models/_python_assets__exposures.yml), so a full run ticks
# journeys after them.
GROUP = "journeys"


def journey_asset_key(path: Path) -> str:
    return f"journey_{path.stem}"


def diagram_markdown(path: Path) -> str:
    """The journey's diagram (no counts) as a Markdown image for the asset description; empty when
    the file does not parse (its asset reports why at run time). `crmflow journeys render` and each
    materialisation's `diagram` metadata add the counts of the last run."""
    loaded = load_journey_file(path)
    if loaded.journey is None:
        return ""
    svg = base64.b64encode(render_svg(loaded.journey).encode()).decode()
    return f"\n\n![journey {path.stem}](data:image/svg+xml;base64,{svg})"


def build_journey_asset(path: Path, mart_deps: list[dg.AssetKey]) -> dg.AssetsDefinition:
    file_name = path.name

    @dg.asset(
        name=journey_asset_key(path),
        group_name=GROUP,
        deps=mart_deps,
        description=f"Journey {path.stem} (marketing/journeys/{file_name}): one tick — exits and goals, "
        "entrants, step advancement, planned messages in send_ledger — when its current version is approved "
        "(docs/journeys.md, Governance)." + diagram_markdown(path),
        kinds={"duckdb"},
        check_specs=[dg.AssetCheckSpec("journey_config_valid", asset=journey_asset_key(path)),
                     dg.AssetCheckSpec("journey_approved", asset=journey_asset_key(path),
                                       description="The current version is approved and not disabled "
                                       "(else the journey enrols nobody and sends nothing; the check says why).")],
    )
    def _journey(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                 settings: CrmflowSettingsResource):
        as_of = as_of_from_context(context)
        config = JourneyConfig(Path(settings.marketing_dir))
        file = config.journeys_dir / file_name
        with warehouse.open() as wh:
            try:
                report, gate = gated_tick(wh, config, file, as_of)
            except JourneyInvalidError as exc:
                # Reported, not raised: a broken file must not block dispatch of the other journeys.
                context.log.error(str(exc))
                errors = dg.MetadataValue.md("```\n" + str(exc) + "\n```")
                yield dg.MaterializeResult(metadata={"valid": False, "errors": errors})
                yield dg.AssetCheckResult(check_name="journey_config_valid", passed=False,
                                          severity=dg.AssetCheckSeverity.ERROR, metadata={"errors": errors})
                yield dg.AssetCheckResult(check_name="journey_approved", passed=False,
                                          severity=dg.AssetCheckSeverity.WARN,
                                          metadata={"reason": "the file is invalid: no version to approve"})
                return
            diagram = Path(settings.export_dir) / "journeys" / f"{path.stem}.html"
            loaded = config.load(file)
            if loaded.journey is not None:
                diagram.parent.mkdir(parents=True, exist_ok=True)
                diagram.write_text(render_html(loaded.journey, journey_counts(wh, loaded.journey.id)), encoding="utf-8")
        if not gate.runs:
            # The gate working, not a problem of this run: the journey_approved check (WARN) says why;
            # `crmflow run` prints one line naming every journey it stopped, not one warning each.
            context.log.info(f"{path.stem}: {gate.reason}")
            context.log.info(f"{path.stem}: {gate.state.replace('_', ' ')}: enrols nobody, sends nothing")
        else:
            for note in report.notes:
                context.log.warning(f"{path.stem}: {note}")
            context.log.info(f"{path.stem} as of {as_of.isoformat()}: entered {report.entered} "
                             f"(holdout {report.holdout}), planned {report.planned}, exited {sum(report.exited.values())}")
        yield dg.MaterializeResult(metadata={
            "valid": True, "approval": gate.state, "diagram": dg.MetadataValue.path(str(diagram)), **{
            k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in report.metadata().items()}})
        yield dg.AssetCheckResult(check_name="journey_config_valid", passed=True)
        # Not running is the gate working, not a failed run: a warning that says why and what to do.
        yield dg.AssetCheckResult(check_name="journey_approved", passed=gate.runs,
                                  severity=dg.AssetCheckSeverity.WARN,
                                  metadata={"state": gate.state, "reason": gate.reason})

    return _journey


class DispatchRunConfig(dg.Config):
    """Run config of journey_dispatch: send worker processes (more than 1 on PostgreSQL only)."""

    workers: int = 1


def build_dispatch_asset(journey_keys: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        name="journey_dispatch",
        group_name=GROUP,
        # The ticks plan the ledger rows; delivery_events loads bounces/unsubscribes into
        # suppression_list (operational state, not a dbt relation): both before sending. What it
        # reads from the warehouse (the `recommendations` template variable): its dbt exposure.
        deps=[*journey_keys, "delivery_events", *exposure_deps("journey_dispatch")],
        description="Applies policies (consent, caps, quiet hours) to planned messages and sends the due "
        "ones through the channels: claim -> send -> record, at-most-once, under a dispatch lock.",
        check_specs=[dg.AssetCheckSpec("send_ledger_keys_unique", asset="journey_dispatch"),
                     dg.AssetCheckSpec("no_rows_left_sending", asset="journey_dispatch")],
        kinds={"duckdb"},
    )
    def journey_dispatch(context: dg.AssetExecutionContext, config: DispatchRunConfig, warehouse: WarehouseResource,
                         settings: CrmflowSettingsResource, journey_channels: JourneyChannelsResource):
        as_of = as_of_from_context(context)
        journey_config = JourneyConfig(Path(settings.marketing_dir))
        with warehouse.open() as wh:
            # The OS dispatch lock sits beside a DuckDB file; PostgreSQL dispatches take an advisory lock.
            lock_beside = Path(warehouse.path) if wh.dialect == "duckdb" else None
            workers = config.workers if wh.dialect == "postgres" else 1
            if workers != config.workers:
                context.log.info(f"DuckDB: one dispatch worker (single writer); workers={config.workers} "
                                 "applies on PostgreSQL")
            report = dispatch_all(wh, journey_config, as_of, journey_channels.channels(), lock_beside,
                                  workers=workers)
            dup = wh.scalar("select count(*) - count(distinct message_key) from send_ledger")
            sending = wh.scalar("select count(*) from send_ledger where state = 'sending'")
        for row in report.reconciled_unknown:
            context.log.warning(f"ledger row {row['message_key'][:12]}… ({row['journey_id']}/{row['step_id']}, "
                                f"{row['channel']}) was claimed but never recorded: marked unknown, not resent")
        if report.held:  # unapproved caps/channels settings (Governance): the gate working, a line not a warning
            context.log.info(f"held: {report.held}")
        yield dg.MaterializeResult(metadata={k: dg.MetadataValue.json(v) if isinstance(v, dict) else v
                                             for k, v in report.metadata().items()})
        yield dg.AssetCheckResult(check_name="send_ledger_keys_unique", passed=dup == 0, metadata={"duplicates": dup})
        yield dg.AssetCheckResult(check_name="no_rows_left_sending", passed=sending == 0,
                                  metadata={"sending": sending})

    return journey_dispatch


def build_journey_assets(journeys_dir: Path, mart_deps: list[dg.AssetKey] | None = None
                         ) -> list[dg.AssetsDefinition]:
    deps = exposure_deps("journey_ticks") if mart_deps is None else mart_deps
    journey_assets = [build_journey_asset(p, deps) for p in journey_files(journeys_dir)]
    return [*journey_assets, build_dispatch_asset([a.key.path[-1] for a in journey_assets])]
