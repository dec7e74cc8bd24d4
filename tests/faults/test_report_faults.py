"""Issue 12.2 and 12.8: mtl-report on summaries that are not what they should be, and runs that died."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from mtl_cli.report import main as report_main
from mtl_cli.utils.process import process_alive, process_identity


def _report(capsys, *args: str) -> tuple[int, str, str]:
    try:
        report_main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _run(root, name: str, summary) -> None:
    (root / name).mkdir(parents=True)
    data = summary if isinstance(summary, bytes) else json.dumps(summary).encode()
    (root / name / "summary.json").write_bytes(data)


GOOD = {
    "status": "completed",
    "tasks": ["cls"],
    "metrics": {"cls": {"accuracy": 0.5}},
    "metric_directions": {"cls": {"accuracy": True}},
    "overrides": ["task=cls"],
}


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\x80\x81binary\xff", "is not valid JSON"),
        ([1, 2, 3], "holds a JSON list, not an object"),
        ({**GOOD, "metrics": [0.5]}, "has 'metrics' that is not a table of per-task values"),
        ({**GOOD, "metrics": {"cls": 0.5}}, "has 'metrics' that is not a table of per-task values"),
        ({**GOOD, "overrides": "task=cls"}, "has 'overrides' that is not a JSON list"),
    ],
)
def test_malformed_summaries_are_listed_not_fatal(tmp_path, capsys, content, problem):
    _run(tmp_path, "good", GOOD)
    _run(tmp_path, "bad", content)
    code, out, err = _report(capsys, str(tmp_path), "--out", str(tmp_path / "report"))
    assert code == 0 and err == "", err
    assert "unreadable" in out and problem in out


def test_out_at_an_existing_file_is_refused(tmp_path, capsys):
    _run(tmp_path, "good", GOOD)
    (tmp_path / "taken").write_text("mine\n")
    code, _, err = _report(capsys, str(tmp_path / "good"), "--out", str(tmp_path / "taken"))
    assert code == 2 and err.strip().splitlines() == [
        f"mtl-report: error: --out {tmp_path / 'taken'} is a file; give a directory for report.md, report.csv and pareto.png"
    ]
    assert (tmp_path / "taken").read_text() == "mine\n"


def test_a_running_run_whose_process_is_gone_is_reported_as_died(tmp_path, capsys):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that no longer runs
    gone = {"pid": child.pid, "host": socket.gethostname(), "start_ticks": None}
    _run(tmp_path, "dead", {**GOOD, "status": "running", "metrics": None, "process": gone})
    _run(tmp_path, "alive", {**GOOD, "status": "running", "metrics": None, "process": process_identity()})
    _run(
        tmp_path,
        "elsewhere",
        {**GOOD, "status": "running", "metrics": None, "process": {**gone, "host": "another-host"}},
    )
    code, out, _ = _report(capsys, str(tmp_path), "--out", str(tmp_path / "report"))
    assert code == 0
    assert f"died; its process (pid {child.pid} on {socket.gethostname()}) is gone" in out
    assert out.count("unfinished (still running, or killed on another host)") == 2


def test_process_identity_tells_a_reused_pid_from_the_same_process():
    me = process_identity()
    assert process_alive(me) is True
    assert process_alive({**me, "start_ticks": (me["start_ticks"] or 0) + 1}) is (me["start_ticks"] is None)
    assert process_alive({**me, "host": "not-" + me["host"]}) is None
    assert process_alive({}) is None
    assert os.getpid() == me["pid"]
