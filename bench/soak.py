"""`make soak`: the reliability tests at soak scale (docs/reliability.md).

The same test files `make test` runs, with the sizes raised through environment variables:
50 SIGKILL trials, consent simulation over 100k users x 30 daily ticks, 300 hypothesis examples
per source. Expect tens of minutes on 2 cores; each test prints what it exercised.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOAK_ENV = {
    "CRMFLOW_CRASH_TRIALS": "50",
    "CRMFLOW_CRASH_USERS": "1000",
    "CRMFLOW_CONSENT_USERS": "100000",
    "CRMFLOW_CONSENT_TICKS": "30",
    "CRMFLOW_HYPOTHESIS_EXAMPLES": "300",
}
TESTS = ["tests/test_reliability_crash.py", "tests/test_reliability_faults.py",
         "tests/test_reliability_concurrency.py", "tests/test_reliability_bad_input.py",
         "tests/test_reliability_consent.py"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller soak (10 kills, 20k users x 10 ticks)")
    args = parser.parse_args()
    env = {**os.environ, **SOAK_ENV}
    if args.quick:
        env.update(CRMFLOW_CRASH_TRIALS="10", CRMFLOW_CRASH_USERS="300", CRMFLOW_CONSENT_USERS="20000",
                   CRMFLOW_CONSENT_TICKS="10", CRMFLOW_HYPOTHESIS_EXAMPLES="100")
    sizes = ", ".join(f"{k}={env[k]}" for k in SOAK_ENV)
    print(f"soak: {sizes}", flush=True)
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *TESTS]
    return subprocess.call(command, cwd=REPO, env=env)


if __name__ == "__main__":
    sys.exit(main())
