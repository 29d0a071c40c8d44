"""The intelligence assets materialise on a small warehouse and on an empty one."""

import json
from pathlib import Path

import dagster as dg
import pytest
from helpers_intelligence import AS_OF, simulate_warehouse

from assets.intelligence import intelligence_assets
from crmflow.intelligence import model_store
from crmflow.warehouse import connect
from orchestration.asof import as_of_tags
from orchestration.resources import WarehouseResource


def _materialize(path: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        intelligence_assets,
        resources={"warehouse": WarehouseResource(path=str(path))},
        tags=as_of_tags(AS_OF),
        run_config={"ops": {"customer_churn_scores": {"config": {"horizon_days": 60, "max_iter": 60}},
                            "customer_clusters": {"config": {"k_min": 3, "k_max": 5}}}},
    )


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_assets_on_a_small_warehouse(tmp_path, monkeypatch):
    monkeypatch.delenv("CRMFLOW_MODEL_DIR", raising=False)
    path = tmp_path / "w.duckdb"
    with connect(path) as con:
        simulate_warehouse(con, users=800, seed=21)
    result = _materialize(path)
    assert result.success
    checks = _checks(result)
    assert checks["clusters_contract"] and checks["churn_scores_contract"]
    assert checks["recommendations_contract"] and checks["priority_contract"]
    assert checks["churn_model_beats_baseline"] and checks["recommendations_beat_popularity"]
    churn_meta = result.asset_materializations_for_node("customer_churn_scores")[0].metadata
    assert churn_meta["model_roc_auc"].value > churn_meta["baseline_roc_auc"].value
    with connect(path, read_only=True) as con:
        counts = {t: con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in
                  ("customer_clusters", "customer_churn_scores", "customer_recommendations", "customer_priority")}
        runs = con.execute("select model_name, decision, model_version, metrics, artifact_path "
                           "from intelligence_model_runs order by model_name").fetchall()
        ranked = con.execute("""select count(*) from customer_priority p join customer_churn_scores s using (user_id)
                                where abs(p.churn_probability - s.churn_probability) > 1e-12""").fetchall()[0][0]
    assert counts["customer_clusters"] == 800 and counts["customer_priority"] == counts["customer_churn_scores"]
    assert ranked == 0
    assert [r[0] for r in runs] == ["churn", "clustering", "recommendations"]
    churn = runs[0]
    assert churn[1] == "model" and "roc_auc" in json.loads(churn[3])["model"]
    artefact = Path(churn[4])
    assert artefact.parent == tmp_path / "models" and artefact.name == f"{churn[2]}.joblib"
    loaded = model_store.load_artifact(artefact)
    assert loaded["decision"] == "model" and loaded["model"] is not None


def test_assets_on_an_empty_warehouse_succeed_and_say_so(tmp_path):
    path = tmp_path / "empty.duckdb"
    result = _materialize(path)
    assert result.success
    checks = _checks(result)
    assert checks["churn_model_beats_baseline"] is False  # visible: no model was trained
    meta = result.asset_materializations_for_node("customer_churn_scores")[0].metadata
    assert meta["decision"].value == "insufficient_data"
    assert "missing input tables" in meta["summary"].value
    with connect(path, read_only=True) as con:
        for table in ("customer_clusters", "customer_churn_scores", "customer_recommendations",
                      "customer_priority"):
            assert con.execute(f"select count(*) from {table}").fetchall()[0][0] == 0


def test_model_version_changes_with_params_and_cutoff():
    a = model_store.model_version("churn", {"h": 60}, AS_OF)
    assert a == model_store.model_version("churn", {"h": 60}, AS_OF)
    assert a != model_store.model_version("churn", {"h": 30}, AS_OF)
    assert a != model_store.model_version("churn", {"h": 60}, AS_OF.replace(day=2))


@pytest.mark.parametrize("bad", [{"horizon_days": 3}, {"label": "vibes"}])
def test_bad_config_is_a_clear_error(tmp_path, bad):
    with pytest.raises(Exception, match="horizon_days|label"):
        dg.materialize(
            intelligence_assets,
            resources={"warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb"))},
            tags=as_of_tags(AS_OF),
            run_config={"ops": {"customer_churn_scores": {"config": bad}}},
        )
