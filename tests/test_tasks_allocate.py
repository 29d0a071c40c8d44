"""The weighted, capacity-capped allocation."""

from __future__ import annotations

import numpy as np

from crmflow.tasks.allocate import allocate


def test_share_follows_performance_weight_in_every_priority_band():
    eligible = np.ones((300, 2), dtype=bool)
    owner = allocate(eligible, capacity=np.array([1000, 1000]), weight=np.array([2.0, 1.0]))
    assert (owner >= 0).all()
    assert np.bincount(owner).tolist() == [200, 100]
    top = owner[:30]
    assert np.bincount(top).tolist() == [20, 10]  # also among the highest-priority tasks
    assert owner[0] == 0  # the best performer gets the very first task


def test_capacity_is_never_exceeded_and_rest_is_unassigned():
    eligible = np.ones((100, 3), dtype=bool)
    owner = allocate(eligible, capacity=np.array([10, 5, 0]), weight=np.array([1.0, 3.0, 5.0]))
    counts = np.bincount(owner[owner >= 0], minlength=3)
    assert counts.tolist() == [10, 5, 0]
    assert (owner[:15] >= 0).all() and (owner[15:] == -1).all()  # the top 15 tasks got handled


def test_eligibility_and_preference_are_respected():
    eligible = np.array([[True, False], [True, True], [False, True], [True, True]])
    preference = np.array([[0, 0], [0, 1], [0, 0], [1, 0]])
    owner = allocate(eligible, capacity=np.array([1, 5]), weight=np.array([1.0, 1.0]), preference=preference)
    assert owner[0] == 0 or owner[3] == 0
    assert owner[2] == 1
    assert owner[1] == 1  # operator 1 prefers task 1
    assert owner[0] == -1 or owner[3] == -1  # operator 0 has capacity 1
    assert owner[3] == 0  # operator 0 picks its preferred task before a higher-priority one


def test_previous_owner_is_kept_within_capacity():
    eligible = np.ones((4, 2), dtype=bool)
    previous = np.array([1, 1, 1, -1])
    owner = allocate(eligible, capacity=np.array([5, 2]), weight=np.array([5.0, 1.0]), previous_owner=previous)
    assert owner[:2].tolist() == [1, 1]
    assert owner[2] == 0 and owner[3] == 0  # operator 1 is full


def test_large_task_list_is_fast():
    rng = np.random.default_rng(1)
    eligible = rng.random((200_000, 20)) < 0.4
    owner = allocate(eligible, capacity=np.full(20, 500), weight=rng.uniform(0.5, 2.0, 20))
    counts = np.bincount(owner[owner >= 0], minlength=20)
    assert (counts <= 500).all() and counts.sum() == 10_000
    assert eligible[np.flatnonzero(owner >= 0), owner[owner >= 0]].all()
