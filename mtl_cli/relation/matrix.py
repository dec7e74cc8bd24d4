"""Read the relation matrix R (``relation.matrix``) and check it against the run's tasks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mtl_cli.errors import UserError

EXAMPLE = "relation.matrix='{cls: {seg: 1.0}}' or relation.matrix='[[0,1],[1,0]]'"


def parse_relation_matrix(value: Any, task_names: Sequence[str], required: bool = False) -> list[list[float]]:
    """R as a k x k list of floats in task order; missing entries (and ``None``) are 0.

    ``value`` is either a mapping ``{task_i: {task_j: R_ij}}`` keyed by task names, or a
    list of k rows of k numbers in the run's task order. Raises ``UserError`` for a name
    that is not a task of the run, a matrix that is not k x k, or a negative or
    non-numeric entry. ``required``: an empty matrix is an error too.
    """
    names = list(task_names)
    k = len(names)
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        if required:
            raise UserError(f"relation=given needs a relation matrix over the tasks {', '.join(names)}; set {EXAMPLE}")
        return [[0.0] * k for _ in range(k)]
    if isinstance(value, Mapping):
        return _from_mapping(value, names)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return _from_rows(value, names)
    raise UserError(f"relation.matrix={value!r} is not a matrix; write {EXAMPLE}")


def _from_mapping(value: Mapping, names: list[str]) -> list[list[float]]:
    index = {name: i for i, name in enumerate(names)}
    matrix = [[0.0] * len(names) for _ in names]
    for row_name, row in value.items():
        _check_name(str(row_name), index)
        if not isinstance(row, Mapping):
            raise UserError(
                f"relation.matrix.{row_name} must map task names to strengths, e.g. {{{names[-1]}: 1.0}}; got {row!r}"
            )
        for col_name, entry in row.items():
            _check_name(str(col_name), index)
            matrix[index[str(row_name)]][index[str(col_name)]] = _entry(entry, f"relation.matrix.{row_name}.{col_name}")
    return matrix


def _from_rows(rows: Sequence, names: list[str]) -> list[list[float]]:
    k = len(names)
    shape = f"{k}x{k} (rows and columns in the order {', '.join(names)})"
    for r, row in enumerate(rows):
        if isinstance(row, str) or not isinstance(row, Sequence):
            raise UserError(f"relation.matrix row {r + 1} is not a list of numbers; R must be {shape}")
        if len(row) != len(rows):
            raise UserError(
                f"relation.matrix is not square: it has {len(rows)} rows but row {r + 1} has {len(row)} entries; "
                f"R must be {shape}"
            )
    if len(rows) != k:
        raise UserError(f"relation.matrix is {len(rows)}x{len(rows)} but task= has {k} tasks; R must be {shape}")
    return [
        [_entry(v, f"relation.matrix[{names[i]}][{names[j]}]") for j, v in enumerate(row)] for i, row in enumerate(rows)
    ]


def _check_name(name: str, index: Mapping[str, int]) -> None:
    if name not in index:
        raise UserError(
            f"relation.matrix names task '{name}', which is not in task={'+'.join(index)}; "
            f"use only the tasks {', '.join(index)}"
        )


def _entry(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where}={value!r} is not a number; relation strengths are numbers >= 0")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise UserError(f"{where}={value} is negative or not finite; relation strengths must be finite numbers >= 0")
    return number
