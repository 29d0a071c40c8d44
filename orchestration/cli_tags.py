"""`crmflow tags ...`: check marketing/tags.yaml before a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crmflow.settings import load_settings
from crmflow.tags import TagsConfigError, compile_rules, load_tags_config

app = typer.Typer(help="Rule-based customer tags (marketing/tags.yaml).", no_args_is_help=True)


@app.command()
def check(
    path: Annotated[Path | None, typer.Option(help="Tags file; default <marketing>/tags.yaml.")] = None,
) -> None:
    """Validate the tags file and list each tag with its compiled conditions."""
    tags_file = path or load_settings().marketing_dir / "tags.yaml"
    try:
        rules = compile_rules(load_tags_config(tags_file))
    except TagsConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    for rule in rules:
        value = rule.value_text if rule.value_text is not None else rule.value_num
        typer.echo(f"{rule.tag}[{rule.condition_no}]: {rule.field} {rule.operator}"
                   + ("" if value is None else f" {value}"))
    typer.echo(f"ok: {len({r.tag for r in rules})} tags in {tags_file}")
