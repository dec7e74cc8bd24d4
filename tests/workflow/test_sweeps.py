"""Multirun sweeps end to end: baselines + weight sweep + report (callback and CLI), Optuna, joblib."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import TINY, read_summary, run_cli
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from wf_helpers import one_thread  # noqa: F401 (autouse)

from mtl_cli.config import CONFIG_DIR, register_configs
from mtl_cli.report import main as report_main

pytestmark = pytest.mark.slow

ARGS = [*TINY, "optim.lr=0.01", "trainer.vis_images=0", "trainer.progress=false"]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _hand_delta_m(run: dict, cls_base: dict, seg_base: dict) -> float:
    """The delta-m formula written out for cls (accuracy) + seg (miou, pixel accuracy), all higher-is-better."""
    m, c, s = run["metrics"], cls_base["metrics"]["cls"], seg_base["metrics"]["seg"]
    terms = [
        (m["cls"]["accuracy"] - c["accuracy"]) / c["accuracy"] * 100,
        (m["seg"]["miou"] - s["miou"]) / s["miou"] * 100,
        (m["seg"]["pixel_accuracy"] - s["pixel_accuracy"]) / s["pixel_accuracy"] * 100,
    ]
    return sum(terms) / 3


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder holding the single-task baselines, from ``mtl-train -m task=cls,seg``."""
    cwd = tmp_path_factory.mktemp("sweeps")
    run_cli("mtl_cli.train", ["-m", "task=cls,seg", *ARGS, "hydra.sweep.dir=base"], cwd=cwd)
    return cwd


@pytest.mark.e2e
def test_weight_sweep_with_baselines_reports_delta_m(workdir, capsys):
    base = workdir / "base"
    assert [read_summary(base / str(i))["tasks"] for i in (0, 1)] == [["cls"], ["seg"]]
    assert (base / "report.md").is_file() and (base / "command.txt").read_text().startswith("mtl-train -m task=cls,seg")
    # One bad value: that job fails, the others still run, the sweep exits non-zero and the report lists it.
    proc = run_cli(
        "mtl_cli.train",
        [
            "-m",
            "task=cls+seg",
            "loss.weights.seg=0.5,2.0,-1.0",
            *ARGS,
            "sweep.baselines=[base]",
            "hydra.sweep.dir=weights",
        ],
        cwd=workdir,
        check=False,
    )
    assert proc.returncode == 2 and "loss.weights.seg=-1.0" in proc.stderr.strip().splitlines()[-1]
    sweep = workdir / "weights"
    runs = [read_summary(sweep / str(i)) for i in (0, 1)]
    cls_base, seg_base = read_summary(base / "0"), read_summary(base / "1")
    rows = _csv(sweep / "report.csv")
    assert [r["run"] for r in rows] == ["0", "1", "2"]
    assert [r["loss.weights.seg"] for r in rows] == ["0.5", "2.0", "-1.0"]
    assert [r["status"] for r in rows] == ["completed", "completed", "no summary"]
    for row, run in zip(rows, runs):
        assert float(row["delta_m"]) == pytest.approx(_hand_delta_m(run, cls_base, seg_base), abs=1e-9)
        assert float(row["cls.accuracy"]) == run["metrics"]["cls"]["accuracy"]
    assert "## Failed or unfinished runs" in (sweep / "report.md").read_text()
    assert (sweep / "pareto.png").is_file()

    # The CLI over both sweeps: baselines found among the runs, one row per run.
    report_main([str(sweep), str(base), "--out", str(workdir / "both"), "--pareto", "seg.miou", "cls.accuracy"])
    table = _csv(workdir / "both" / "report.csv")
    assert [r["run"] for r in table] == ["weights/0", "weights/1", "weights/2", "base/0", "base/1"]
    assert [float(r["delta_m"]) for r in table[:2]] == [float(r["delta_m"]) for r in rows[:2]]
    assert [r["delta_m"] for r in table[2:]] == ["", "", ""]
    assert "sweep.baselines" not in table[0]
    assert "weights/0" in capsys.readouterr().out


@pytest.mark.e2e
def test_optuna_searches_the_loss_weight_for_delta_m(workdir):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")  # the [sweep] extra (part of [dev])
    run_cli(
        "mtl_cli.train",
        [
            "hparams_search=loss_weights",
            "hydra.sweeper.n_trials=2",
            *ARGS,
            "sweep.baselines=[base]",
            "hydra.sweep.dir=optuna",
        ],
        cwd=workdir,
    )
    sweep = workdir / "optuna"
    weights = [
        float(dict(o.split("=", 1) for o in read_summary(sweep / str(i))["overrides"])["loss.weights.seg"])
        for i in (0, 1)
    ]
    assert all(0.1 <= w <= 10.0 for w in weights) and weights[0] != weights[1]
    rows = _csv(sweep / "report.csv")
    result = OmegaConf.load(sweep / "optimization_results.yaml")
    assert result.best_value == pytest.approx(max(float(r["delta_m"]) for r in rows))
    assert float(result.best_params["loss.weights.seg"]) in weights


@pytest.mark.e2e
def test_joblib_launcher_runs_jobs_in_parallel_processes(workdir):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")  # the [sweep] extra (part of [dev])
    run_cli(
        "mtl_cli.train",
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "task=cls,seg", *ARGS, "hydra.sweep.dir=parallel"],
        cwd=workdir,
    )
    for i in (0, 1):  # the same configs as the baselines: the same results, whichever process ran them
        assert (
            read_summary(workdir / "parallel" / str(i))["metrics"] == read_summary(workdir / "base" / str(i))["metrics"]
        )
    assert len(_csv(workdir / "parallel" / "report.csv")) == 2


@pytest.mark.e2e
def test_a_sweep_never_reuses_an_earlier_sweep_directory(workdir):
    before = {p: p.read_bytes() for p in (workdir / "base").rglob("*") if p.is_file()}
    proc = run_cli("mtl_cli.train", ["-m", "task=cls", *ARGS, "hydra.sweep.dir=base"], cwd=workdir, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "hydra.sweep.dir" in lines[0], proc.stderr
    assert {p: p.read_bytes() for p in (workdir / "base").rglob("*") if p.is_file()} == before


def test_slurm_launcher_config_composes():
    """The documented SLURM launcher (cannot run here): it composes onto hydra-submitit-launcher."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")  # the [slurm] extra (part of [dev])
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 1, 240)
