"""Suggested grouping: exhaustive over partitions, Fifty et al.'s mean-affinity score."""

from __future__ import annotations

from mtl_cli.relation.grouping import format_grouping, group_score, partitions, suggest_grouping


def test_partitions_are_all_set_partitions():
    found = list(partitions([0, 1, 2, 3]))
    assert len(found) == 15  # Bell(4)
    assert len({tuple(sorted(tuple(sorted(g)) for g in p)) for p in found}) == 15
    assert all(sorted(i for g in p for i in g) == [0, 1, 2, 3] for p in found)


def test_group_score_is_the_mean_affinity_onto_each_member():
    z = [[9.0, 1.0, 4.0], [2.0, 9.0, -1.0], [3.0, 5.0, 9.0]]
    assert group_score(z, [0]) == 0.0
    assert group_score(z, [0, 1]) == 2.0 + 1.0
    assert group_score(z, [0, 1, 2]) == (2 + 3) / 2 + (1 + 5) / 2 + (4 - 1) / 2


def test_helpful_tasks_group_and_harmful_ones_split():
    names = ["a", "b", "c", "d"]
    z = [
        [1.0, 0.5, -0.2, -0.3],
        [0.4, 1.0, -0.1, -0.2],
        [-0.3, -0.2, 1.0, 0.6],
        [-0.1, -0.4, 0.3, 1.0],
    ]
    assert suggest_grouping(z, names) == [["a", "b"], ["c", "d"]]
    assert format_grouping([["a", "b"], ["c", "d"]]) == "{a, b} {c, d}"


def test_all_helpful_is_one_group_all_harmful_is_singletons_ties_prefer_fewer_groups():
    names = ["x", "y", "z"]
    assert suggest_grouping([[1, 0.2, 0.2], [0.2, 1, 0.2], [0.2, 0.2, 1]], names) == [["x", "y", "z"]]
    assert suggest_grouping([[1, -0.2, -0.2], [-0.2, 1, -0.2], [-0.2, -0.2, 1]], names) == [["x"], ["y"], ["z"]]
    assert suggest_grouping([[0.0] * 3] * 3, names) == [["x", "y", "z"]]


def test_grouping_uses_the_direction_of_affinity():
    """b helps a a lot, a hurts b a little: a's gain outweighs b's loss, so they group."""
    assert suggest_grouping([[1, -0.1], [0.5, 1]], ["a", "b"]) == [["a", "b"]]
    assert suggest_grouping([[1, -0.6], [0.5, 1]], ["a", "b"]) == [["a"], ["b"]]
