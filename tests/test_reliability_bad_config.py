"""Bad config: a corpus of broken banner, operator, task-rule and channel files
(tests/fixtures/bad_configs/<kind>/*.yaml; first line `# expect: <fragment>`, second `# line: <n>`),
each rejected in one line naming the file, the line and field, and the reason. The journey part reuses the
journeys corpus (tests/fixtures/journeys_broken, checked in test_journeys_validation.py); here an
end-to-end tick proves a broken journey sends nothing while a good one in the same run sends."""

import shutil
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
from helpers_reliability import AS_OF, build_world, journey_yaml

from assets.journeys import build_journey_assets
from connectors.channels.config import ChannelsConfigError, load_channels_config
from crmflow.banners.config import load_banner_config
from crmflow.settings import REPO_ROOT
from crmflow.tasks.config import load_roster, load_task_rules
from crmflow.warehouse import connect
from crmflow.yaml_config import ConfigFileError
from orchestration.asof import as_of_tags
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.resources_journeys import JourneyChannelsResource

CORPUS = REPO_ROOT / "tests" / "fixtures" / "bad_configs"
JOURNEYS_BROKEN = REPO_ROOT / "tests" / "fixtures" / "journeys_broken"
LOADERS = {
    "banners": (load_banner_config, ConfigFileError),
    "operators": (load_roster, ConfigFileError),
    "task_rules": (load_task_rules, ConfigFileError),
    "channels": (load_channels_config, ChannelsConfigError),
}
CASES = sorted(CORPUS.glob("*/*.yaml"))


def test_corpus_size() -> None:
    journey_cases = len(list(JOURNEYS_BROKEN.glob("*.yaml")))
    assert len(CASES) >= 30 and journey_cases >= 30
    assert {p.parent.name for p in CASES} == set(LOADERS)


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_broken_config_is_rejected_with_file_line_field_reason(path: Path) -> None:
    header = path.read_text(encoding="utf-8").splitlines()
    expected = header[0].removeprefix("# expect: ")
    line = header[1].removeprefix("# line: ")
    load, error = LOADERS[path.parent.name]
    with pytest.raises(error) as excinfo:
        load(path)
    message = str(excinfo.value)
    assert expected in message, message
    if path.parent.name == "channels":  # connectors/channels/config.py still formats its own message
        assert message.startswith(f"{path}: "), message
        assert line == "-" or f"(line {line})" in message, message
    else:  # the shared loader (crmflow/yaml_config.py): one line, file:line: field: message
        assert "\n" not in message, message
        assert message.startswith(f"{path}:{line}: " if line != "-" else f"{path}:"), message


def test_broken_journey_sends_nothing_while_the_good_one_sends(tmp_path: Path) -> None:
    world = build_world(tmp_path, 4, ("email",))
    journeys = Path(world.marketing_dir) / "journeys"
    broken = ["b04_bad_channel.yaml", "b05_unknown_template.yaml", "b19_yaml_syntax.yaml"]
    for name in broken:
        shutil.copy(JOURNEYS_BROKEN / name, journeys / name)
    # a journey that parses but targets the same users, broken by an unknown template reference
    (journeys / "rel_bad.yaml").write_text(journey_yaml("rel_bad", "email").replace("template: hello}",
                                                                                  "template: helo}"))
    assets = build_journey_assets(journeys, mart_deps=[])
    result = dg.materialize(
        assets,
        resources={
            "warehouse": WarehouseResource(path=world.warehouse),
            "settings": CrmflowSettingsResource(landing_dir=str(tmp_path), outbox_dir=world.outbox_dir,
                                                export_dir=str(tmp_path), marketing_dir=world.marketing_dir),
            "journey_channels": JourneyChannelsResource(outbox_dir=world.outbox_dir, outbox_only=True),
        },
        tags=as_of_tags(AS_OF + timedelta(minutes=5)),
        raise_on_error=False,
    )
    assert result.success
    checks = {e.asset_key.path[-1]: e.passed for e in result.get_asset_check_evaluations()
              if e.check_name == "journey_config_valid"}
    assert checks["journey_rel_email"] is True
    assert {k for k, ok in checks.items() if not ok} == {"journey_rel_bad", *(f"journey_{Path(n).stem}"
                                                                           for n in broken)}
    with connect(world.warehouse) as con:
        by_journey = dict(con.execute("select journey_id, count(*) filter (where state = 'sent') "
                                      "from send_ledger group by 1").fetchall())
    assert by_journey == {"rel_email": 4}
    sent = (Path(world.outbox_dir) / "email.jsonl").read_text(encoding="utf-8")
    assert sent.count("\n") == 4 and "rel_bad" not in sent
