"""The leaf helpers: atomic files, the CSV log, flattening and <task>.<metric> keys."""

from __future__ import annotations

import json

import pytest
import torch

from mtl_cli.utils.collectives import all_reduce_max_, all_reduce_mean_, broadcast_object, is_active
from mtl_cli.utils.files import MetricsLog, atomic_copy, atomic_write, write_json
from mtl_cli.utils.mappings import flatten_dict, key_under
from mtl_cli.utils.metric_keys import split_metric_key


def test_atomic_write_replaces_the_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with atomic_write(path) as handle:
        handle.write("new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_failed_atomic_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(path, "wb", fsync=True) as handle:
        handle.write(b"half")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_atomic_copy_creates_the_folder(tmp_path):
    (tmp_path / "src.pt").write_bytes(b"\x00\x01")
    atomic_copy(tmp_path / "src.pt", tmp_path / "sub" / "dst.pt")
    assert (tmp_path / "sub" / "dst.pt").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["dst.pt"]


def test_write_json_is_indented_with_a_final_newline(tmp_path):
    write_json(tmp_path / "s.json", {"b": 1, "a": [1.5]})
    text = (tmp_path / "s.json").read_text()
    assert text.endswith("}\n") and json.loads(text) == {"b": 1, "a": [1.5]} and text.index('"b"') < text.index('"a"')


def test_metrics_log_fixes_the_header_and_continues_an_existing_file(tmp_path):
    path = tmp_path / "metrics.csv"
    MetricsLog(path).append({"epoch": 1, "loss": 0.123456789})
    log = MetricsLog(path)
    assert log.columns == ["epoch", "loss"]
    log.append({"epoch": 2, "loss": 1.0, "extra": 3})
    assert path.read_text().splitlines() == ["epoch,loss", "1,0.123457", "2,1"]


def test_flatten_dict_and_key_under():
    assert flatten_dict({"a": {"b": 1, "c": {}}, "d": [1]}) == {"a.b": 1, "a.c": {}, "d": [1]}
    assert key_under("loss.weights.seg", ["loss.weights"]) and not key_under("loss.weightsx", ["loss.weights"])


@pytest.mark.parametrize("key, parts", [("seg.miou", ("seg", "miou")), ("cls", ("cls", "")), ("a.b.c", ("a", "b.c"))])
def test_split_metric_key(key, parts):
    assert split_metric_key(key) == parts


def test_collectives_are_identities_in_one_process():
    assert not is_active()
    tensor = torch.tensor([1.0, 3.0])
    assert all_reduce_mean_(tensor) is tensor and all_reduce_max_(tensor).tolist() == [1.0, 3.0]
    assert broadcast_object({"a": 1}) == {"a": 1}
