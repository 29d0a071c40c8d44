"""The wheel ships what a non-editable install needs to run (issue 16 item 6): the dbt project
(dbt_project.yml, profiles.yml, dbt_project/) and the marketing defaults, in crmflow/project/, where
crmflow.settings finds them when crmflow is not imported from a source checkout."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCE_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "dbt_project.yml", "profiles.yml")
SOURCE_DIRS = ("orchestration", "assets", "connectors", "crmflow", "dbt_project", "marketing")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source")
    # a copy of the sources, so the build's build/ and egg-info stay out of the checkout
    for name in (*SOURCE_FILES, *SOURCE_DIRS):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns(
                "__pycache__", "target", "logs", "*.duckdb", "*.egg-info"))
        else:
            shutil.copy2(REPO / name, source / name)
    # no network: the build backend (setuptools) is the one in this venv
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(out), str(source)], check=True, capture_output=True, timeout=600)
    [built] = out.glob("crmflow-*.whl")
    return built


def test_the_wheel_holds_the_dbt_project_and_the_marketing_defaults(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    project = "crmflow/project/"
    for name in ("dbt_project.yml", "profiles.yml", "marketing/roles.yaml", "marketing/policies.yaml",
                 "dbt_project/seeds/segment_definitions.csv"):
        assert project + name in names, name
    for folder in ("dbt_project/models", "dbt_project/macros", "dbt_project/tests", "marketing/journeys"):
        shipped = {n for n in names if n.startswith(f"{project}{folder}/")}
        in_repo = {f"{project}{p.relative_to(REPO).as_posix()}" for p in (REPO / folder).rglob("*") if p.is_file()
                   and "__pycache__" not in p.parts}
        assert in_repo and shipped == in_repo, folder
    assert "orchestration/dagster.yaml" in names
    assert not [n for n in names if "/target/" in n or n.endswith(".duckdb")]


def test_an_installed_copy_finds_its_project_and_parses_it(wheel: Path, tmp_path: Path) -> None:
    """Unpacked outside the checkout (what pip install puts in site-packages): settings point into
    crmflow/project/, and dbt parse of that project writes its manifest there."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import crmflow.settings as s; print(s.DBT_PROJECT_DIR); print(s.load_settings().marketing_dir); "
            "from orchestration.cli import prepare_dbt_manifest; print(prepare_dbt_manifest(force=True))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(site),
                               "HOME": str(tmp_path), "CRMFLOW_WAREHOUSE": str(tmp_path / "w.duckdb")})
    assert done.returncode == 0, done.stderr[-3000:]
    project_dir, marketing, manifest = done.stdout.split()[-3:]
    assert Path(project_dir) == site / "crmflow" / "project"
    assert Path(marketing) == site / "crmflow" / "project" / "marketing"
    assert Path(manifest) == site / "crmflow" / "project" / "target" / "manifest.json" and Path(manifest).is_file()
