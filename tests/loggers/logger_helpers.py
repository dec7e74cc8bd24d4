"""Loggers tests: W&B offline and silent in a temp dir (nothing goes to the network), a run dir, a picture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtl_cli.loggers import RunInfo

BLOCK = 32 * 1024  # the .wandb file is a LevelDB-style log of 32 KiB blocks
HEADER = 7  # file header (":W&B", magic, version) and record header (crc, length, type) alike


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """W&B offline, silent, no credentials, its settings and cache under tmp_path."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


@pytest.fixture
def run_info(tmp_path: Path) -> RunInfo:
    """A fresh run directory below tmp_path."""
    run_dir = tmp_path / "outputs" / "run1"
    run_dir.mkdir(parents=True)
    return RunInfo(run_dir=run_dir, run_name="run1", tags={"weighting": "uw"}, tracking_root=tmp_path)


def write_png(path: Path, size: int = 8) -> Path:
    """A ``size`` x ``size`` gradient picture at ``path``."""
    pixels = np.linspace(0, 255, size * size * 3).reshape(size, size, 3).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def wandb_records(run_file: Path) -> list:
    """Every protobuf ``Record`` in an offline run's ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", run_file
    records, chunk, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the block's tail is padding
            pos += left
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kind = data[pos + 6]
        if kind == 0 and length == 0:
            break
        chunk += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):  # full, or last piece
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def wandb_history(run_file: Path) -> list[dict]:
    """The history rows (``{"_step": ..., key: value}``) of an offline W&B run."""
    rows = []
    for record in wandb_records(run_file):
        if record.WhichOneof("record_type") == "history":
            items = record.history.item
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    return rows
