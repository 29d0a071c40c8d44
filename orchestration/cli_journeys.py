"""`crmflow journeys ...`: validate, list, preview, diff and render marketer journeys; approve,
enable and disable them, approve the caps and channels settings (governance: marketing/roles.yaml,
docs/journeys.md "Governance")."""

import json
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from crmflow.errors import CrmflowUserError
from crmflow.governance.approvals import approve as record_approval
from crmflow.governance.approvals import gate, history, switch
from crmflow.governance.roles import Governance
from crmflow.governance.settings_approval import (
    SETTINGS_WHAT,
    approve_settings,
    has_uncommitted_settings,
    settings_gate,
    settings_subject,
)
from crmflow.governance.subjects import journey_gate, subject_for
from crmflow.governance.versions import SHORT, has_uncommitted_change, journey_version
from crmflow.journeys.loader import LoadedJourney, journey_files
from crmflow.journeys.runner import JourneyConfig
from crmflow.journeys.schema import Journey
from crmflow.settings import load_settings, parse_as_of
from crmflow.warehouse import Warehouse, apply_migrations, open_warehouse
from orchestration.user_errors import existing_warehouse

app = typer.Typer(help="Marketer journeys (marketing/journeys/*.yaml).", no_args_is_help=True)


def _config() -> JourneyConfig:
    return JourneyConfig(load_settings().marketing_dir)


@app.command()
def validate(path: Annotated[Path | None, typer.Argument(help="A journey file or folder.")] = None) -> None:
    """Check journey files; print file:line: field: reason for every error (exit 1 if any) and
    warning (exit code unchanged)."""
    config = _config()
    target = path or config.journeys_dir
    files = journey_files(target)
    if not files:
        typer.echo(f"no journey files in {target}", err=True)
        raise typer.Exit(1)
    failed = 0
    for file in files:
        loaded = config.load(file)
        for warning in loaded.warnings:  # suspicious, never fails (e.g. a tag that may be a manual tag)
            typer.echo(f"warning: {warning}", err=True)
        if loaded.ok:
            typer.echo(f"ok      {file}")
        else:
            failed += 1
            for error in loaded.errors:
                typer.echo(str(error), err=True)
    typer.echo(f"{len(files) - failed} valid, {failed} invalid")
    raise typer.Exit(1 if failed else 0)


@app.command("list")
def list_journeys() -> None:
    """One line per journey file: id, enabled, priority, trigger, steps, owner (or INVALID), and its
    approval state (approved / not approved / disabled / not required) when a warehouse exists, then
    one `(settings)` line: the approval state of the caps and channels settings."""
    config = _config()
    governance = config.governance()
    target = load_settings().warehouse
    exists = target.kind != "duckdb" or Path(target.path).is_file()
    with open_warehouse(existing_warehouse(target)) if exists else nullcontext() as wh:
        if wh is not None:
            apply_migrations(wh)
        for file in journey_files(config.journeys_dir):
            loaded = config.load(file)
            j = loaded.journey
            if j is None:
                typer.echo(f"{loaded.key:<24} INVALID ({len(loaded.errors)} error(s); run `crmflow journeys validate`)")
                continue
            state = "approval unknown (no warehouse yet)"
            if wh is not None:
                decision = journey_gate(wh, governance, file, j.id, config.marketing_dir)
                state = f"{decision.state}: {decision.reason}"
            typer.echo(f"{j.id:<24} {'enabled ' if j.enabled else 'disabled'} prio={j.priority:<4} "
                       f"trigger={j.trigger.type:<10} steps={len(j.steps):<3} owner={j.owner} "
                       f"version={journey_version(file)[:SHORT]} {state}")
        if wh is not None:
            settings = settings_gate(wh, governance, config.marketing_dir)
            typer.echo(f"{'(settings)':<24} channels.yaml+policies.yaml "
                       f"version={settings_subject(config.marketing_dir, False).version[:SHORT]} "
                       f"{settings.state}: {settings.reason}")


def _journey_file(config: JourneyConfig, journey_id: str) -> Path:
    file = next((f for f in journey_files(config.journeys_dir) if f.stem == journey_id), None)
    if file is None:
        known = ", ".join(sorted(f.stem for f in journey_files(config.journeys_dir))) or "none"
        raise CrmflowUserError(f"no journey {journey_id!r} in {config.journeys_dir} (known: {known})")
    return file


def _valid(loaded: LoadedJourney, what: str) -> Journey:
    if not loaded.ok or loaded.journey is None:
        raise CrmflowUserError(f"cannot {what} {loaded.key}: the file is invalid ({loaded.errors[0]}); "
                               "run `crmflow journeys validate`")
    return loaded.journey


Who = Annotated[str, typer.Option("--as", help="Your person id (or email) in marketing/roles.yaml.")]
At = Annotated[str | None, typer.Option("--at", help="ISO-8601 time to record; default now.")]


@app.command("approve")
def approve_journey(
    journey_id: Annotated[str, typer.Argument(help="Journey id (file name without .yaml).")],
    who: Who,
    comment: Annotated[str | None, typer.Option(help="Why, what was reviewed.")] = None,
    at: At = None,
) -> None:
    """Approve the journey's current version (the hash of its file and templates) as an approver;
    under the two-person rule its author cannot. An audit row records it."""
    config = _config()
    file = _journey_file(config, journey_id)
    journey = _valid(config.load(file), "approve")
    governance = config.governance()
    subject = subject_for(file, journey.id, journey.owner, config.marketing_dir)
    with open_warehouse(load_settings().warehouse) as wh:
        apply_migrations(wh)
        added = record_approval(wh, governance, subject, who, comment, parse_as_of(at, "--at"))
        decision = gate(wh, governance, subject)
    typer.echo(f"{'approved' if added else 'already approved'} {journey.id} version {subject.version[:SHORT]} "
               f"as {who}; now {decision.state}: {decision.reason}")


@app.command("approve-settings")
def approve_settings_command(
    who: Who,
    comment: Annotated[str | None, typer.Option(help="Why, what was reviewed.")] = None,
    at: At = None,
) -> None:
    """Approve the current caps and channels settings (the hash of marketing/channels.yaml and
    policies.yaml) as a launcher; until then dispatch holds. An audit row records it."""
    config = _config()
    governance = config.governance()
    with open_warehouse(load_settings().warehouse) as wh:
        apply_migrations(wh)
        added, subject = approve_settings(wh, governance, config.marketing_dir, who, comment, parse_as_of(at, "--at"))
        decision = settings_gate(wh, governance, config.marketing_dir)
    typer.echo(f"{'approved' if added else 'already approved'} {SETTINGS_WHAT} version {subject.version[:SHORT]} "
               f"as {who}; now {decision.state}: {decision.reason}")


def _switch(journey_id: str, who: str, action: str, reason: str | None, at: str | None) -> None:
    config = _config()
    file = _journey_file(config, journey_id)
    journey = _valid(config.load(file), action)
    governance = config.governance()
    subject = subject_for(file, journey.id, journey.owner, config.marketing_dir, with_authors=False)
    with open_warehouse(load_settings().warehouse) as wh:
        apply_migrations(wh)
        switch(wh, governance, subject, who, action, reason, parse_as_of(at, "--at"))
        decision = gate(wh, governance, subject)
    typer.echo(f"{action}d {journey.id} as {who}; now {decision.state}: {decision.reason}")


@app.command()
def enable(journey_id: Annotated[str, typer.Argument(help="Journey id.")], who: Who,
           reason: Annotated[str | None, typer.Option(help="Why.")] = None, at: At = None) -> None:
    """A launcher lifts their kill switch (the journey still needs an approved version)."""
    _switch(journey_id, who, "enable", reason, at)


@app.command()
def disable(journey_id: Annotated[str, typer.Argument(help="Journey id.")], who: Who,
            reason: Annotated[str | None, typer.Option(help="Why.")] = None, at: At = None) -> None:
    """A launcher's kill switch: from the next tick the journey enrols, advances and sends nothing."""
    _switch(journey_id, who, "disable", reason, at)


@app.command()
def audit(journey_id: Annotated[str | None, typer.Argument(help="One journey; default all.")] = None,
          limit: Annotated[int, typer.Option(min=1)] = 50) -> None:
    """The latest approvals, enables and disables, newest first (JSON lines)."""
    with open_warehouse(existing_warehouse(load_settings().warehouse)) as wh:
        apply_migrations(wh)
        for row in history(wh, journey_id, limit):
            typer.echo(json.dumps(row, default=str, ensure_ascii=False))


@app.command()
def preview(
    journey_id: Annotated[str, typer.Argument(help="Journey id (file name without .yaml).")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="ISO-8601 as-of time; default now.")] = None,
    samples: Annotated[int, typer.Option(min=0, help="Sample messages to render.")] = 3,
) -> None:
    """Who would enter, counts per step and variant, sample messages — nothing is written or sent."""
    from crmflow.journeys.preview import preview_journey

    moment = parse_as_of(as_of)
    config = _config()
    file = _journey_file(config, journey_id)
    with open_warehouse(existing_warehouse(load_settings().warehouse)) as con:
        loaded = config.load(file, con)
        if not loaded.ok or loaded.journey is None:
            typer.echo(loaded.error_text(), err=True)
            raise typer.Exit(1)
        result = preview_journey(con, loaded.journey, moment, config.policies().default_timezone, samples)
    typer.echo(json.dumps({"journey": journey_id, "as_of": result.report.as_of.isoformat(),
                           **result.report.metadata(), "samples": result.samples},
                          ensure_ascii=False, indent=2, default=str))


@app.command()
def diff(
    journey_id: Annotated[str, typer.Argument(help="Journey id (file name without .yaml).")],
    against: Annotated[str, typer.Option("--against", help="Git ref of the old version.")] = "HEAD",
    as_of: Annotated[str | None, typer.Option("--as-of", help="Simulate at this time; default the last run.")] = None,
    samples: Annotated[int, typer.Option(min=0, help="Sample users per group.")] = 5,
) -> None:
    """The change against a git ref in words (steps, audience, timing, templates) and, as of the
    last run, who would enter, leave or get which message under the old and the new version.
    Read-only: the simulation runs in a transaction that is rolled back."""
    from crmflow.journeys.diff import describe_changes, git_version_text, impact, parse_version

    config = _config()
    file = _journey_file(config, journey_id)
    old_text = git_version_text(file, against)
    old = parse_version(old_text, file, against) if old_text is not None else None
    with open_warehouse(existing_warehouse(load_settings().warehouse)) as wh:
        new = _valid(config.load(file, wh), "diff")
        result = impact(wh, old, new, parse_as_of(as_of) if as_of else None, config.policies().default_timezone)
    typer.echo(json.dumps({"journey": journey_id, "against": against,
                           "changes": describe_changes(old, new), "impact": result.summary(samples)},
                          ensure_ascii=False, indent=2, default=str))


def render_journey_file(wh: Warehouse | None, config: JourneyConfig, journey_id: str, out: Path) -> Path:
    """Write the diagram of one journey (SVG if `out` ends in .svg, else HTML) with its last run's counts."""
    from crmflow.journeys.render import JourneyCounts, journey_counts, render_html, render_svg

    journey = _valid(config.load(_journey_file(config, journey_id)), "render")
    counts = journey_counts(wh, journey.id) if wh is not None else JourneyCounts()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_svg(journey, counts) if out.suffix == ".svg" else render_html(journey, counts),
                   encoding="utf-8")
    return out


@app.command()
def render(
    journey_id: Annotated[str, typer.Argument(help="Journey id (file name without .yaml).")],
    out: Annotated[Path | None, typer.Option(help="Output file (.svg or .html); default "
                                             "<CRMFLOW_EXPORT_DIR>/journeys/<id>.html.")] = None,
) -> None:
    """A diagram of the journey (steps, branches, waits, exits, holdout) with counts per step from
    the last run when the warehouse has one."""
    settings = load_settings()
    config = _config()
    target = settings.warehouse
    path = out or settings.export_dir / "journeys" / f"{journey_id}.html"
    exists = target.kind != "duckdb" or Path(target.path).is_file()
    with open_warehouse(existing_warehouse(target), read_only=True) if exists else nullcontext() as wh:
        written = render_journey_file(wh, config, journey_id, path)
    typer.echo(str(written))


def approve_for_demo(config: JourneyConfig, wh: Warehouse, at: datetime) -> list[str]:
    """The demo world's visible approval step: every shipped journey (as committed) whose version is
    not approved is approved by the first approver for it who did not write it. Lines to print."""
    governance = config.governance()
    lines = []
    if not governance.required:
        return lines
    for file in journey_files(config.journeys_dir):
        loaded = config.load(file)
        if loaded.journey is None:
            continue
        subject = subject_for(file, loaded.journey.id, loaded.journey.owner, config.marketing_dir)
        if gate(wh, governance, subject).runs:
            continue
        if has_uncommitted_change(file):  # only what ships; an edit waits for a real approval
            lines.append(f"demo: {subject.journey_id} has an uncommitted edit: not approved, it will not send "
                         f"(`crmflow journeys approve {subject.journey_id} --as <approver>`)")
            continue
        approvers = [p for p in governance.holders("approver", subject.journey_id, subject.path)
                     if not (governance.identities(p) & set(subject.authors))]
        if not approvers:
            lines.append(f"demo: {subject.journey_id} has no approver who did not write it: it will not send")
            continue
        record_approval(wh, governance, subject, approvers[0], "demo world: shipped version", at)
        lines.append(f"demo: approved {subject.journey_id} version {subject.version[:SHORT]} as {approvers[0]}")
    return lines + _approve_settings_for_demo(config, governance, wh, at)


def _approve_settings_for_demo(config: JourneyConfig, governance: Governance, wh: Warehouse,
                               at: datetime) -> list[str]:
    """The shipped caps and channels settings (as committed), approved by the first launcher."""
    if settings_gate(wh, governance, config.marketing_dir).runs:
        return []
    if has_uncommitted_settings(config.marketing_dir):
        return ["demo: channels.yaml/policies.yaml have an uncommitted edit: settings not approved, dispatch "
                "holds (`crmflow journeys approve-settings --as <launcher>`)"]
    current = settings_subject(config.marketing_dir, with_authors=False)
    launchers = governance.holders("launcher", current.journey_id, current.path)
    if not launchers:
        return ["demo: nobody holds the launcher role: settings not approved, dispatch holds"]
    _, subject = approve_settings(wh, governance, config.marketing_dir, launchers[0], "demo world: shipped settings", at)
    return [f"demo: approved {SETTINGS_WHAT} version {subject.version[:SHORT]} as {launchers[0]}"]
