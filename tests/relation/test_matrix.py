"""Reading R from the config: both forms, and one clear line for every kind of bad R."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from mtl_cli.errors import UserError
from mtl_cli.relation.matrix import parse_relation_matrix

TASKS = ["cls", "seg", "depth"]


def test_mapping_form_fills_task_order_and_zeros():
    value = OmegaConf.create({"depth": {"cls": 2}, "cls": {"seg": 1.0}})
    assert parse_relation_matrix(value, TASKS) == [[0, 1, 0], [0, 0, 0], [2, 0, 0]]


def test_list_form_is_in_task_order():
    value = OmegaConf.create([[0, 1, 2], [3, 0, 4], [5, 6, 0]])
    assert parse_relation_matrix(value, TASKS) == [[0, 1, 2], [3, 0, 4], [5, 6, 0]]


def test_missing_matrix_is_zero_unless_required():
    assert parse_relation_matrix(None, ["cls", "seg"]) == [[0, 0], [0, 0]]
    with pytest.raises(UserError, match="relation=given needs a relation matrix over the tasks cls, seg"):
        parse_relation_matrix({}, ["cls", "seg"], required=True)


@pytest.mark.parametrize(
    "value, message",
    [
        ({"cls": {"edges": 1}}, "names task 'edges', which is not in task=cls\\+seg\\+depth"),
        ({"normals": {"cls": 1}}, "names task 'normals'"),
        ([[0, 1], [1, 0, 2]], "not square: it has 2 rows but row 2 has 3 entries"),
        ([[0, 1], [1, 0]], "is 2x2 but task= has 3 tasks"),
        ({"cls": {"seg": -1}}, "relation.matrix.cls.seg=-1 is negative"),
        ([[0, 1, 0], [0, 0, -0.5], [0, 0, 0]], r"relation.matrix\[seg\]\[depth\]=-0.5 is negative"),
        ({"cls": {"seg": "high"}}, "is not a number"),
        ({"cls": 1}, "relation.matrix.cls must map task names to strengths"),
        ("abc", "is not a matrix"),
    ],
)
def test_bad_matrices_are_one_line_user_errors(value, message):
    with pytest.raises(UserError, match=message) as info:
        parse_relation_matrix(OmegaConf.create({"m": value}).m, TASKS)
    assert "\n" not in str(info.value)
