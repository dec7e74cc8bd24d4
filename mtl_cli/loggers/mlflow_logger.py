"""MLflow: a local store beside ``outputs/`` by default, one experiment per sweep, resumable runs."""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mtl_cli.errors import UserError, one_line
from mtl_cli.loggers.base import RunInfo, Scalar, TrackerLogger
from mtl_cli.loggers.config import MlflowOptions

DEFAULT_EXPERIMENT = "mtl-cli"
MAX_PARAM_LENGTH = 6000
PARAM_BATCH, METRIC_BATCH = 100, 1000  # the most MLflow takes in one log_batch
SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")
_UNSAFE_KEY = re.compile(r"[^\w\-. /]")


def default_tracking_uri(root: Path) -> str:
    """``sqlite:///<root>/mlflow.db``: what a plain ``mlflow ui`` started in ``root`` reads."""
    return f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def metric_key(key: str) -> str:
    """A key MLflow accepts (letters, digits, ``_-. /``); others become ``_``."""
    return _UNSAFE_KEY.sub("_", key)


def check_tracking_uri(uri: str) -> None:
    """Raise a one-line ``UserError`` for a tracking URI that cannot work, before training starts."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.split("+")[0]
    if scheme not in SCHEMES:
        raise UserError(
            f"logger.mlflow.tracking_uri={uri!r}: unsupported scheme {parsed.scheme!r}; "
            f"use one of {', '.join(s + ':' for s in SCHEMES)}"
        )
    if scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5):
                pass
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(f"logger.mlflow.tracking_uri={uri!r}: no MLflow server answers there ({reason})") from exc
    if scheme in ("sqlite", "file"):
        local = Path(uri[len("sqlite:///") :] if scheme == "sqlite" else parsed.path)
        folder = local.parent if scheme == "sqlite" else local
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"logger.mlflow.tracking_uri={uri!r}: cannot create {folder}: {exc.strerror}") from exc
        if not os.access(folder, os.W_OK):
            raise UserError(f"logger.mlflow.tracking_uri={uri!r}: {folder} is not writable")


class MlflowLogger(TrackerLogger):
    """Logs to MLflow through ``MlflowClient`` (no global active run, so sweeps in one process are safe).

    Without ``tracking_uri`` the store is ``<tracking root>/mlflow.db`` with artifacts in
    ``<tracking root>/mlruns``. A ``file:`` URI uses MLflow's older file store (allowed here).
    The run's tags are the job's overrides; its params the flattened config.
    """

    name = "mlflow"

    def __init__(self, options: MlflowOptions) -> None:
        self.options = options
        self.client: MlflowClient | None = None
        self.run_id: str | None = None

    def start(self, run: RunInfo) -> None:
        root = run.store_root
        uri = self.options.tracking_uri or default_tracking_uri(root)
        check_tracking_uri(uri)
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            self.client = MlflowClient(tracking_uri=uri)
            experiment_id = self._experiment(self.options.experiment or run.group or DEFAULT_EXPERIMENT, root)
        except MlflowException as exc:
            raise UserError(f"logger.mlflow.tracking_uri={uri!r}: {one_line(exc.message)}") from exc
        tags = {f"override.{key}": str(value) for key, value in run.tags.items()}
        if run.group:
            tags["sweep"] = run.group
        previous = (run.resume or {}).get("run_id")
        if previous:
            self.client.update_run(previous, status="RUNNING")
            self.run_id = previous
        else:
            self.run_id = self.client.create_run(experiment_id, run_name=run.run_name, tags=tags).info.run_id

    def _experiment(self, name: str, root: Path) -> str:
        assert self.client is not None
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None if self.options.tracking_uri else (Path(root).resolve() / "mlruns").as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:
            # another job of the sweep created it first
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def _run(self) -> tuple[MlflowClient, str]:
        if self.client is None or self.run_id is None:
            raise RuntimeError("MLflow logger used before start()")
        return self.client, self.run_id

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        client, run_id = self._run()
        now = int(time.time() * 1000)
        metrics = [Metric(metric_key(k), float(v), now, step) for k, v in values.items()]
        for i in range(0, len(metrics), METRIC_BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + METRIC_BATCH])

    def log_hparams(self, params: Mapping[str, Scalar], final_metrics: Mapping[str, float]) -> None:
        client, run_id = self._run()
        logged = client.get_run(run_id).data.params  # params are immutable: a resumed run keeps its own
        fresh = [
            Param(metric_key(k), str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items() if metric_key(k) not in logged
        ]
        for i in range(0, len(fresh), PARAM_BATCH):
            client.log_batch(run_id, params=fresh[i : i + PARAM_BATCH])
        now = int(time.time() * 1000)
        finals = [Metric(metric_key(f"final/{k}"), float(v), now, 0) for k, v in final_metrics.items()]
        client.log_batch(run_id, metrics=finals)

    def log_artifact(self, path: Path, step: int | None = None) -> None:
        client, run_id = self._run()
        path = Path(path)
        if path.is_dir():
            client.log_artifacts(run_id, str(path), artifact_path=path.name)
        else:
            client.log_artifact(run_id, str(path))

    def state(self) -> dict[str, Any]:
        return {"run_id": self.run_id} if self.run_id else {}

    def close(self, failed: bool = False) -> None:
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")
            self.client = None
