"""Weighted, capacity-capped assignment of priority-sorted tasks to operators (vectorised numpy).

1. Previous owners first: a task whose customer's last operator is eligible goes back to them,
   highest priority first, within their capacity.
2. Then rounds: each round every operator earns credit = performance_weight / max weight and takes
   as many whole tasks as its credit allows (best performer first), each time its highest-priority
   eligible unassigned tasks ("preferred" matches first). So in every priority band an operator's
   share is proportional to its weight, and nobody goes above remaining capacity.

The loops run over operators and rounds; the work per step is numpy slicing over index arrays.
"""

from __future__ import annotations

import numpy as np


def allocate(
    eligible: np.ndarray,  # bool (tasks, operators); tasks sorted by priority, highest first
    capacity: np.ndarray,  # int (operators,): remaining capacity today
    weight: np.ndarray,  # float (operators,) > 0
    preference: np.ndarray | None = None,  # int (tasks, operators): preferred criteria matched
    previous_owner: np.ndarray | None = None,  # int (tasks,): operator index or -1
) -> np.ndarray:
    """Operator index per task, -1 when no eligible operator has capacity left."""
    n_tasks, n_ops = eligible.shape
    owner = np.full(n_tasks, -1, dtype=np.int64)
    remaining = np.maximum(capacity.astype(np.int64), 0).copy()
    if n_tasks == 0 or n_ops == 0:
        return owner

    if previous_owner is not None:
        for op in range(n_ops):
            keep = np.flatnonzero((previous_owner == op) & eligible[:, op] & (owner < 0))[: remaining[op]]
            owner[keep] = op
            remaining[op] -= keep.size

    candidates = []
    for op in range(n_ops):
        idx = np.flatnonzero(eligible[:, op] & (owner < 0))
        if preference is not None and idx.size:
            idx = idx[np.argsort(-preference[idx, op], kind="stable")]
        candidates.append(idx)
    pointer = np.zeros(n_ops, dtype=np.int64)
    credit = np.zeros(n_ops, dtype=np.float64)
    step = weight / weight.max()
    order = np.argsort(-weight, kind="stable")  # best performer picks first within a round

    while True:
        active = (remaining > 0) & (pointer < np.array([c.size for c in candidates]))
        if not active.any():
            break
        credit[active] += step[active]
        for op in order:
            if not active[op]:
                continue
            want = int(min(np.floor(credit[op] + 1e-9), remaining[op]))
            while want > 0 and pointer[op] < candidates[op].size:
                window = candidates[op][pointer[op]: pointer[op] + 4 * want + 16]
                free_pos = np.flatnonzero(owner[window] < 0)
                take_pos = free_pos[:want]
                owner[window[take_pos]] = op
                taken = take_pos.size
                remaining[op] -= taken
                credit[op] -= taken
                want -= taken
                # Everything before the last taken task is assigned now; skip it for good.
                pointer[op] += (take_pos[-1] + 1) if want == 0 and taken else window.size
    return owner
