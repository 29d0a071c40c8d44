"""Manual tags ingestion (CSV -> raw_manual_tags / quarantine_manual_tags), the tags.yaml loader, and
the two Dagster assets on a temp DuckDB."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from assets.manual_tags import raw_manual_tags, tag_rules
from connectors.sources.manual_tags import ingest_manual_tags
from crmflow.settings import REPO_ROOT
from crmflow.tags import FIELDS, TagsConfigError, compile_rules, load_tags_config
from crmflow.warehouse import connect
from orchestration.asof import as_of_tags
from orchestration.resources import CrmflowSettingsResource, WarehouseResource

AS_OF = datetime(2026, 3, 10, 12, tzinfo=UTC)


def _write(landing: Path, name: str, text: str) -> Path:
    folder = landing / "manual_tags"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_ingest_loads_quarantines_and_dedupes(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    _write(tmp_path, "a.csv", (
        "user_id,tag,added_by,added_at\n"
        "u1,VIP ,alice,2026-03-01T10:00:00Z\n"          # 2: tag normalised to vip
        "u1,vip,bob,2026-02-01T10:00:00Z\n"             # 3: same pair, earlier: wins
        ",vip,alice,2026-03-01\n"                       # 4: missing user_id
        "u2,Bad Tag!,alice,2026-03-01\n"                # 5: invalid tag
        "u2,vip,alice,not-a-date\n"                     # 6: invalid timestamp
        "u2,vip,alice,2026-12-01\n"                     # 7: after the as-of
        "u3,vip\n"                                      # 8: wrong column count
        "\n"                                            # 9: blank line: not a row
        "u4,churn_risk,carol,2026-03-02 08:00:00\n"     # 10: naive time is UTC
    ))
    with connect(warehouse) as con:
        stats = ingest_manual_tags(con, tmp_path, AS_OF)
        raw = con.execute("select user_id, tag, added_by, cast(added_at as varchar), _source_line "
                          "from raw_manual_tags order by user_id").fetchall()
        quarantine = con.execute("select line_number, reason, field from quarantine_manual_tags "
                                 "order by line_number").fetchall()
        again = ingest_manual_tags(con, tmp_path, AS_OF)
    assert raw == [("u1", "vip", "bob", "2026-02-01 10:00:00+00", 3),
                   ("u4", "churn_risk", "carol", "2026-03-02 08:00:00+00", 10)]
    assert quarantine == [(4, "missing_value", "user_id"), (5, "invalid_tag", "tag"),
                          (6, "invalid_timestamp", "added_at"), (7, "added_at_in_future", "added_at"),
                          (8, "wrong_column_count", "expected 4 columns, got 2")]
    assert (stats.rows_read, stats.rows_loaded, stats.duplicates_skipped, stats.rows_quarantined) == (8, 2, 1, 5)
    assert stats.balanced and stats.files_ingested == 1
    assert again.files_skipped == 1 and again.rows_read == 0  # same content: not read twice


def test_later_file_keeps_first_added_at_and_missing_column_is_quarantined(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    _write(tmp_path, "a.csv", "user_id,tag,added_by,added_at\nu1,vip,alice,2026-01-01\n")
    _write(tmp_path, "b.csv", "user_id,tag,added_by,added_at\nu1,vip,bob,2026-02-01\nu2,vip,bob,2026-02-01\n")
    _write(tmp_path, "c.csv", "user,tag,added_by\nu9,vip,x\n")
    with connect(warehouse) as con:
        stats = ingest_manual_tags(con, tmp_path, AS_OF)
        raw = con.execute("select user_id, added_by from raw_manual_tags order by user_id").fetchall()
        bad = con.execute("select reason, field from quarantine_manual_tags").fetchall()
    assert raw == [("u1", "alice"), ("u2", "bob")]
    assert stats.duplicates_skipped == 1
    assert bad == [("missing_column", "user_id, added_at")]


def test_tags_yaml_in_repo_is_valid_and_compiles():
    config = load_tags_config(REPO_ROOT / "marketing" / "tags.yaml")
    rules = compile_rules(config)
    assert {r.tag for r in rules} >= {"big_spender", "mobile_only", "cart_abandoner_7d", "b2b_lead"}
    assert all(r.field in FIELDS for r in rules)


def test_dbt_field_catalogue_matches_python():
    macro = (REPO_ROOT / "dbt_project" / "macros" / "seg_tags.sql").read_text()
    for name, kind in FIELDS.items():
        assert f"'{name}': '{kind}'" in macro, name
    assert macro.count("': '") == len(FIELDS)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("tags:\n  - name: x\n    description: d\n    when: [{field: revnue, op: '>=', value: 1}]\n", "unknown field 'revnue'"),
        ("tags:\n  - name: x\n    description: d\n    when: [{field: country, op: '>=', value: DE}]\n", "does not apply"),
        ("tags:\n  - name: x\n    description: d\n    when: [{field: revenue, op: '>=', value: lots}]\n", "is a number"),
        ("tags:\n  - name: x\n    description: d\n    when: [{predicate: mobile_only, within_days: 3}]\n", "takes no within_days"),
        ("tags:\n  - name: x\n    description: d\n    when: [{predicate: cart_abandoned_without_order}]\n", "needs within_days"),
        ("tags:\n  - name: Big Spender\n    description: d\n    when: [{field: revenue, op: '>=', value: 1}]\n", "lower_snake_case"),
        ("tags:\n  - name: x\n    description: d\n    when: [{field: revenue, op: '>=', value: 1, sql: '1=1'}]\n", "sql"),
        ("tags:\n  - name: x\n    description: d\n    when: []\n", "at least 1"),
        ("tags:\n  - {name: x, description: d, when: [{field: revenue, op: is_null}]}\n"
         "  - {name: x, description: d, when: [{field: revenue, op: is_null}]}\n", "defined twice"),
    ],
)
def test_tags_yaml_errors_name_the_problem(tmp_path, body, message):
    path = tmp_path / "tags.yaml"
    path.write_text(body)
    with pytest.raises(TagsConfigError) as err:
        load_tags_config(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_assets_write_raw_manual_tags_and_tag_rules(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    _write(tmp_path / "landing", "a.csv", "user_id,tag,added_by,added_at\nu1,vip,alice,2026-01-01\nu2,BAD!,a,2026-01-01\n")
    marketing = tmp_path / "marketing"
    marketing.mkdir()
    (marketing / "tags.yaml").write_text(
        "tags:\n  - name: rich\n    description: d\n    when:\n      - {field: revenue, op: '>=', value: 10}\n"
        "      - {field: country, op: in, value: [DE, AT]}\n"
    )
    resources = {
        "warehouse": WarehouseResource(path=str(warehouse)),
        "settings": CrmflowSettingsResource(landing_dir=str(tmp_path / "landing"), outbox_dir=str(tmp_path / "o"),
                                            export_dir=str(tmp_path / "e"), marketing_dir=str(marketing)),
    }
    result = dg.materialize([raw_manual_tags, tag_rules], resources=resources, tags=as_of_tags(AS_OF))
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert [c.passed for c in checks] == [True]
    with connect(warehouse, read_only=True) as con:
        assert con.execute("select user_id, tag from raw_manual_tags").fetchall() == [("u1", "vip")]
        assert con.execute("select count(*) from quarantine_manual_tags").fetchone() == (1,)
        assert con.execute("select tag, condition_no, field, operator, value_num, value_text from tag_rules "
                           "order by condition_no").fetchall() == [
            ("rich", 1, "revenue", ">=", 10.0, None), ("rich", 2, "country", "in", None, "|DE|AT|")]


def test_cli_tags_check(tmp_path):
    from typer.testing import CliRunner

    from orchestration.cli import app

    ok = CliRunner().invoke(app, ["tags", "check", "--path", str(REPO_ROOT / "marketing" / "tags.yaml")])
    assert ok.exit_code == 0 and "big_spender[1]: revenue >= 1000.0" in ok.output
    bad = tmp_path / "tags.yaml"
    bad.write_text("tags:\n  - {name: x, description: d, when: [{field: nope, op: is_null}]}\n")
    failed = CliRunner().invoke(app, ["tags", "check", "--path", str(bad)])
    assert failed.exit_code == 1 and "unknown field 'nope'" in failed.output
