"""The wheel ships the dbt project and the marketing defaults (issue 16): without them an install
that is not editable (`pip install crmflow-*.whl`, the Docker image) cannot run.

They live at the repo root (dbt_project.yml, profiles.yml, dbt_project/, marketing/), outside any
package, so package-data cannot name them: build_py copies them into crmflow/project/ of the build,
where crmflow.settings finds them when crmflow is not imported from a source checkout. Everything
else is in pyproject.toml. MANIFEST.in puts the same files in the sdist, so a wheel built from it
has them too.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# Project files (relative to the repo root) and the folders copied whole.
PROJECT_FILES = ("dbt_project.yml", "profiles.yml")
PROJECT_DIRS = ("dbt_project", "marketing")
SKIP = shutil.ignore_patterns("target", "logs", "dbt_packages", "__pycache__", "*.duckdb", "*.duckdb.wal", ".user.yml")


class build_py_with_project(build_py):  # noqa: N801  (setuptools command naming)
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout itself
        dest = Path(self.build_lib) / "crmflow" / "project"
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for name in PROJECT_FILES:
            shutil.copy2(ROOT / name, dest / name)
        for name in PROJECT_DIRS:
            shutil.copytree(ROOT / name, dest / name, ignore=SKIP)


setup(cmdclass={"build_py": build_py_with_project})
