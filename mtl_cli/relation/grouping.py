"""Which tasks to train together, from an affinity matrix (after Fifty et al. 2021)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence


def partitions(items: Sequence[int]) -> Iterator[list[list[int]]]:
    """Every way to split ``items`` into non-empty groups (Bell(k) of them; 203 for 6 tasks)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for smaller in partitions(rest):
        yield [[first], *smaller]
        for g in range(len(smaller)):
            yield [*smaller[:g], [first, *smaller[g]], *smaller[g + 1 :]]


def group_score(affinity: Sequence[Sequence[float]], group: Sequence[int]) -> float:
    """Sum over the group's tasks j of the mean affinity ``affinity[i][j]`` onto j from the others.

    A task alone scores 0, so a task joins a group exactly when the others help it on
    average.
    """
    if len(group) < 2:
        return 0.0
    return sum(sum(affinity[i][j] for i in group if i != j) / (len(group) - 1) for j in group)


def suggest_grouping(affinity: Sequence[Sequence[float]], task_names: Sequence[str]) -> list[list[str]]:
    """The partition of the tasks with the highest total ``group_score``; ties: fewer groups.

    ``affinity[i][j]`` is the effect of task i on task j (positive: helps). The search is
    exhaustive, which is quick for the handful of tasks a run has (Bell(8) = 4140).
    """
    best: tuple[float, int] | None = None
    chosen: list[list[int]] = []
    for partition in partitions(list(range(len(task_names)))):
        key = (round(sum(group_score(affinity, g) for g in partition), 9), -len(partition))
        if best is None or key > best:
            best, chosen = key, partition
    ordered = sorted((sorted(g) for g in chosen), key=lambda g: g[0])
    return [[task_names[i] for i in g] for g in ordered]


def format_grouping(groups: Sequence[Sequence[str]]) -> str:
    """``{cls, seg} {depth}``."""
    return " ".join("{" + ", ".join(g) + "}" for g in groups)
