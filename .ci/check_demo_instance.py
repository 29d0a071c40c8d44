"""After `make demo` (issue 16 "Done when"): the Dagster instance in DAGSTER_HOME lists the demo's runs,
each with its as-of, and every asset of the full job has a materialisation. Exits 1 naming what is missing."""

import sys

import dagster as dg

from orchestration.asof import AS_OF_TAG
from orchestration.definitions import defs


def main() -> int:
    with dg.DagsterInstance.get() as instance:
        runs = [run for run in instance.get_runs() if run.job_name == "crmflow_full"]
        for run in reversed(runs):
            print(f"run {run.run_id[:8]} {run.job_name} {run.status.value} as of {run.tags.get(AS_OF_TAG, '(none)')}")
        problems = []
        if len(runs) < 3:
            problems.append(f"{len(runs)} crmflow_full runs in {instance.root_directory}, the demo makes 3")
        problems += [f"run {run.run_id[:8]} has no {AS_OF_TAG} tag" for run in runs if AS_OF_TAG not in run.tags]
        problems += [f"run {run.run_id[:8]} did not succeed ({run.status.value})" for run in runs
                     if run.status != dg.DagsterRunStatus.SUCCESS]
        keys = defs.resolve_job_def("crmflow_full").asset_layer.selected_asset_keys
        missing = sorted(k.to_user_string() for k in keys if instance.get_latest_materialization_event(k) is None)
        if missing:
            problems.append(f"never materialised: {', '.join(missing)}")
        print(f"{len(keys) - len(missing)} of {len(keys)} assets materialised")
    for problem in problems:
        print(f"check_demo_instance: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
