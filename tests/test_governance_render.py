"""`crmflow journeys render`: every shipped journey and a crafted one (holdout, branch, wait_until,
exit) as diagrams, checked in headless Chromium (laid out, no overlaps, nothing outside the
picture, no errors or network), with the last run's counts per step; the asset description image."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from helpers_governance import _shipped_roles_rules  # noqa: F401
from helpers_journeys import event, journey_from_yaml, make_customer_tables, profile, ts
from helpers_report import inspect_page
from typer.testing import CliRunner

from assets.journeys import diagram_markdown
from crmflow.journeys.engine import run_tick
from crmflow.journeys.render import journey_counts, render_html
from crmflow.settings import REPO_ROOT
from crmflow.warehouse import connect, open_warehouse
from orchestration.cli import app

CRAFTED = """\
id: render_demo
name: Render demo
owner: growth@example.com
trigger: {type: event, event: checkout_started, lookback: 1d}
holdout: {percent: 30}
templates:
  nudge: {channel: email, locales: {en-US: {subject: "Hi", body: "Cart."}}}
  last: {channel: email, locales: {en-US: {subject: "Last", body: "Cart!"}}}
steps:
  - {id: first_email, type: send, channel: email, template: nudge}
  - id: route
    type: branch
    cases: [{when: {order: {status: [paid]}}, next: done}]
    default: wait_for_order
  - id: wait_for_order
    type: wait_until
    condition: {order: {status: [paid]}}
    timeout: 3d
    timeout_next: last_call
    next: done
  - {id: last_call, type: send, channel: email, template: last}
  - {id: done, type: exit, reason: converted}
"""

# For every diagram on the page: its steps (data-step), whether any two step boxes overlap, whether
# anything is drawn outside the picture, and the counts line of each step.
PROBE = """(() => [...document.querySelectorAll('svg')].map(svg => {
  const box = svg.getBoundingClientRect();
  const rects = [...svg.querySelectorAll('g.step rect')].map(r => r.getBoundingClientRect());
  let overlaps = 0;
  rects.forEach((a, i) => rects.slice(i + 1).forEach(b => {
    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) overlaps++; }));
  const outside = [...svg.querySelectorAll('text, rect, path')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1);
  }).length;
  return {label: svg.getAttribute('aria-label'), steps: [...svg.querySelectorAll('g.step')].map(g => g.dataset.step),
          drawn: rects.filter(r => r.width > 100 && r.height > 30).length, overlaps, outside,
          edges: svg.querySelectorAll('path.edge').length,
          counts: Object.fromEntries([...svg.querySelectorAll('g.step')].map(
            g => [g.dataset.step, g.querySelector('text.counts').textContent]))};
}))()"""


def _check_page(html: Path) -> list[dict]:
    page = inspect_page(html, PROBE)
    assert page.console_errors == [] and page.exceptions == [] and page.network == []
    for svg in page.evaluated:
        assert svg["drawn"] == len(svg["steps"]) and svg["overlaps"] == 0 and svg["outside"] == 0, svg
    return page.evaluated


def test_every_shipped_journey_renders_in_chromium(tmp_path: Path) -> None:
    env = {"CRMFLOW_WAREHOUSE": str(tmp_path / "absent.duckdb")}  # no run yet: a diagram without counts
    shipped = sorted(p.stem for p in (REPO_ROOT / "marketing" / "journeys").glob("*.yaml"))
    bodies = []
    for jid in shipped:
        out = tmp_path / f"{jid}.svg"
        result = CliRunner().invoke(app, ["journeys", "render", jid, "--out", str(out)], env=env)
        assert result.exit_code == 0 and result.output.strip() == str(out), result.output
        bodies.append(out.read_text(encoding="utf-8"))
    index = tmp_path / "all.html"
    index.write_text("<!doctype html><meta charset=utf-8><body>" + "\n".join(bodies), encoding="utf-8")
    seen = _check_page(index)
    assert [s["label"] for s in seen] == [f"journey {jid}" for jid in shipped]
    win_back = seen[shipped.index("win_back")]
    assert "holdout" in win_back["steps"] and win_back["steps"][0] == "entry" and win_back["steps"][-1] == "(end)"
    assert all(set(s["counts"].values()) == {""} for s in seen)  # nothing claims a count without a run


def test_the_diagram_shows_the_last_runs_counts_per_step(tmp_path: Path) -> None:
    journey = journey_from_yaml(CRAFTED)
    warehouse = tmp_path / "wh.duckdb"
    users = [f"u{i:02d}" for i in range(20)]
    with connect(warehouse) as con:
        make_customer_tables(con, customer_profile=[profile(u) for u in users],
                             events_stitched=[event(f"e{u}", u, "checkout_started", "2026-03-01T10:00") for u in users])
        run_tick(con, journey, ts("2026-03-01T12:00"))
        held = con.execute("select count(*) from journey_enrolments where is_holdout").fetchone()[0]
    assert 0 < held < 20
    with open_warehouse(warehouse, read_only=True) as wh:
        counts = journey_counts(wh, "render_demo")
    page = tmp_path / "render_demo.html"
    page.write_text(render_html(journey, counts), encoding="utf-8")
    [svg] = _check_page(page)
    assert svg["steps"] == ["entry", "holdout", "first_email", "route", "wait_for_order", "last_call", "done", "(end)"]
    assert svg["counts"]["entry"] == "20 entered" and svg["counts"]["holdout"] == f"{held} held out"
    assert svg["counts"]["first_email"] == f"0 here, 0 sent, {20 - held} planned"
    assert svg["counts"]["wait_for_order"] == f"{20 - held} here"
    # entry->first, entry->holdout, first->route, 2 branch routes, met + timeout, last->done, done->end
    assert svg["edges"] == 9


def test_the_asset_description_carries_the_diagram() -> None:
    markdown = diagram_markdown(REPO_ROOT / "marketing" / "journeys" / "welcome_series.yaml")
    encoded = re.fullmatch(r"\n\n!\[journey welcome_series\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert encoded and 'aria-label="journey welcome_series"' in base64.b64decode(encoded.group(1)).decode()
    broken = REPO_ROOT / "tests" / "fixtures" / "journeys_broken" / "b05_unknown_template.yaml"
    assert diagram_markdown(broken) == ""


def test_the_report_links_each_journeys_diagram(tmp_path: Path) -> None:
    import pandas as pd

    from crmflow.report.data import load_report_data
    from crmflow.report.render import render_report

    with open_warehouse(tmp_path / "empty.duckdb") as wh:
        data = load_report_data(wh, ts("2026-03-20T00:00"))
    data.frames["journey_funnel"] = pd.DataFrame({"journey_id": ["abandoned_cart", "win_back"], "sent": [3, 2],
                                                  "delivered": [3, 2], "opened": [1, 1], "clicked": [1, 0],
                                                  "converted": [1, 0], "revenue": [10.0, 0.0]})
    html, _ = render_report(data)
    assert re.findall(r'<a href="(journeys/[^"]+)">', html) == ["journeys/abandoned_cart.html", "journeys/win_back.html"]
