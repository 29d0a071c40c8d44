"""Matching: which operators may take which task (required criteria) and which they prefer.

Vectorised per (policy, operator): the loops run over the handful of rules and operators, the
comparisons over whole task arrays.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from crmflow.tasks.config import Matching, Operator


def _criterion(task_values: np.ndarray, accepted: set[str], unknown_matches: bool) -> np.ndarray:
    """A task matches when its value is accepted; a task without a value (nothing to match on)
    passes a required criterion but earns no preference."""
    series = pd.Series(task_values, dtype=object)
    hit = series.isin(sorted(accepted))
    return (hit | series.isna() if unknown_matches else hit).to_numpy(dtype=bool)


def match_matrix(
    operators: list[Operator],
    policy: np.ndarray,  # (tasks,) policy key per task
    matching: Mapping[str, Matching],  # policy key -> matching strategy
    region: np.ndarray,
    language: np.ndarray,
    industry: np.ndarray,
    exclude_operator: np.ndarray,  # (tasks,) operator id not to use again (expired with them) or None
) -> tuple[np.ndarray, np.ndarray]:
    """(eligible bool (tasks, operators), preference int (tasks, operators))."""
    n = policy.size
    eligible = np.zeros((n, len(operators)), dtype=bool)
    preference = np.zeros((n, len(operators)), dtype=np.int64)
    for key in np.unique(policy.astype(str)) if n else []:
        rows = np.flatnonzero(policy == key)
        strategy = matching[key]
        for j, op in enumerate(operators):
            if not op.active or (strategy.teams and op.team not in strategy.teams):
                continue
            ok = np.ones(rows.size, dtype=bool)
            pref = np.zeros(rows.size, dtype=np.int64)
            for mode, values, accepted in (
                (strategy.region, region[rows], {op.region}),
                (strategy.language, language[rows], set(op.languages)),
                (strategy.industry, industry[rows], set(op.industries)),
            ):
                if mode == "ignore":
                    continue
                if mode == "required":
                    ok &= _criterion(values, accepted, unknown_matches=True)
                else:
                    pref += _criterion(values, accepted, unknown_matches=False)
            ok &= ~pd.Series(exclude_operator[rows], dtype=object).eq(op.id).to_numpy(dtype=bool)
            eligible[rows, j] = ok
            preference[rows, j] = pref
    return eligible, preference
