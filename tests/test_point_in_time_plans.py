"""The DuckDB point-in-time join picks a plan per key: keys with at most 8 label rows join
their view rows by hash (arg_max), keys with more use ASOF. The oracle cases of
test_point_in_time_oracle rarely crowd a key past 8 labels, so here every case repeats some
of its label rows until their keys are crowded, and the join must still match the oracle,
with both plans used in the same statement."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from test_point_in_time_oracle import SeededDraw, draw_case, run_case

CROWDED = 8  # the macro's limit: more label rows than this on a key take the ASOF plan


def crowd(case, seed: int):
    """The case with some label rows repeated 5 or 15 times, shuffled, numbered again."""
    rng = random.Random(seed)
    labels = [label for label in case.labels for _ in range(rng.choice([1, 1, 5, 15]))]
    rng.shuffle(labels)
    case.labels = [dict(label, rid=rid) for rid, label in enumerate(labels, 1)]
    return case


def label_counts(case) -> Counter:
    """Label rows per key of each view the case joins."""
    counts = Counter()
    for spec in case.specs:
        counts.update((spec["ref"], *(label[k] for k in spec["keys"])) for label in case.labels)
    return counts


def test_crowded_and_sparse_keys_match_oracle(renderers, oracle_db):
    failures, plans = {}, Counter()
    for seed in range(80):
        case = crowd(draw_case(SeededDraw(seed)), seed)
        counts = label_counts(case).values()
        plans.update({"asof": any(c > CROWDED for c in counts), "hash": any(c <= CROWDED for c in counts)})
        problems = run_case(oracle_db, renderers["duckdb"], case)
        if problems:
            failures[seed] = problems[:5]
    assert failures == {}
    assert plans["asof"] > 20 and plans["hash"] > 20  # both plans ran, often together


@pytest.mark.parametrize("labels_per_key", [1, CROWDED, CROWDED + 1, 40])
def test_one_key_at_the_plan_boundary(labels_per_key, renderers, oracle_db):
    """Every label on one key, just below, at and past the limit, plus a key with none."""
    case = draw_case(SeededDraw(7))
    rng = random.Random(labels_per_key)
    base = [label for label in case.labels if label["k1"] is not None] or case.labels
    crowded = [dict(rng.choice(base), k1=3, k2="a", rid=i + 1) for i in range(labels_per_key)]
    case.labels = crowded + [dict(base[0], k1=6, rid=labels_per_key + 1)]
    assert run_case(oracle_db, renderers["duckdb"], case) == []
