"""Every shell command shown in README.md and docs/*.md is checked here.

Commands are taken from ```bash, ```sh and ```console blocks (in console blocks, the lines
that start with ``$ ``). Each is matched to a checker by its first words; a command no
checker recognises fails the test, so a new command in the docs needs a check here.
``mtl-train`` commands (also under ``torchrun``) must compose with every value of their
sweeps; a few run through the real CLI with ``--cfg job`` in a subprocess.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import re
import runpy
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib
from conftest import REPO, run_cli
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep

from mtl_cli.cli import normalise_task_args
from mtl_cli.config import CONFIG_DIR, register_configs, validate
from mtl_cli.engine.eval_run import split_arguments
from mtl_cli.export import DEFAULTS as EXPORT_DEFAULTS
from mtl_cli.inference.export import FORMATS as EXPORT_FORMATS
from mtl_cli.inference.options import parse_settings
from mtl_cli.inference.predict import PREDICT_DEFAULTS
from mtl_cli.report import parser as report_parser

pytestmark = pytest.mark.e2e

DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "console"}
OTHER_LANGUAGES = {"text", "python", "yaml"}
README_MAX_LINES = 260
SETUP_COMMANDS = ['pip install -e ".[dev]" && mtl-train task=cls+seg', 'pip install -e ".[dev]" && python -m pytest']

# Placeholders the docs use for paths that exist only after a run, and what stands in for them.
PLACEHOLDERS = {
    "<date>": "2024-05-01",
    "<time>": "10-00-00-123456",
    "<run>": "2024-05-01/10-00-00-123456",
    "/.../": "/2024-05-01/10-00-00-123456/",
}
UNKNOWN_PLACEHOLDER = re.compile(r"<[^<>]+>|\.\.\.")

# Commands a test elsewhere runs for real: command prefix -> (test file, a string it must contain).
COVERED_BY = {
    "mtl-train --config-dir": ("tests/test_train_e2e.py", "--config-dir"),
    # the trackers' own viewers: the test reads back what they show, with their own readers
    "tensorboard --logdir": ("tests/loggers/test_tracking_e2e.py", "EventAccumulator"),
    "mlflow ui": ("tests/loggers/test_tracking_e2e.py", "mlflow.db"),
    "wandb sync": ("tests/loggers/test_tracking_e2e.py", "offline-run-"),
}

# Option flags of mtl-train that are not config overrides.
_FLAGS_WITHOUT_VALUE = {"-m", "--multirun", "--help", "-h"}
_FLAGS_WITH_VALUE = {"--cfg", "-c"}


@dataclass(frozen=True)
class Command:
    """One shell command of the docs: where it is shown and its words."""

    where: str
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.argv)}"


def _shown(path: Path) -> str:
    """``path`` as the messages show it: relative to the checkout when inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _fenced_blocks(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line number, language, lines) of every fenced block in a Markdown file."""
    blocks, current = [], None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("```"):
            if current is None:
                current = (number, stripped[3:].strip(), [])
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current[2].append(line)
    assert current is None, f"{path}: unclosed code block at line {current[0]}"
    return blocks


def _shell_lines(language: str, lines: list[str]) -> list[str]:
    """The command lines of a block: continuations joined; console output dropped."""
    if language == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    joined, pending = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return [line for line in joined if line.strip() and not line.lstrip().startswith("#")]


def _without_comment(line: str) -> str:
    """``line`` up to a ``#`` that starts a shell comment (outside quotes, after a blank)."""
    quote = None
    for position, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or line[position - 1].isspace()):
            return line[:position]
    return line


def _substitute(line: str, variables: dict[str, str], where: str) -> str:
    for placeholder, value in PLACEHOLDERS.items():
        line = line.replace(placeholder, value)
    for name, value in variables.items():
        line = line.replace(f"${name}", value)
    left = UNKNOWN_PLACEHOLDER.search(line) or re.search(r"\$\w+", line)
    if left:
        raise AssertionError(f"{where}: '{left.group(0)}' is a placeholder or variable the test does not know: {line}")
    return line


def doc_commands(path: Path) -> list[Command]:
    """Every command of the shell blocks of ``path``; ``a && b`` gives two."""
    commands = []
    for start, language, lines in _fenced_blocks(path):
        if language not in SHELL_LANGUAGES:
            continue
        variables: dict[str, str] = {}
        for line in _shell_lines(language, lines):
            where = f"{_shown(path)}:{start}"
            assignment = re.fullmatch(r"\s*(\w+)=(\"[^\"]*\"|'[^']*')\s*", line)
            if assignment:
                variables[assignment.group(1)] = assignment.group(2)[1:-1]
                continue
            words = shlex.split(_substitute(_without_comment(line), variables, where))
            for part in _split_on(words, "&&"):
                commands.append(Command(where, tuple(part)))
    return commands


def _split_on(words: list[str], separator: str) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for word in words:
        if word == separator:
            parts.append([])
        else:
            parts[-1].append(word)
    return [part for part in parts if part]


ALL_COMMANDS = [command for path in DOC_FILES for command in doc_commands(path)]


# ------------------------------------------------------------------------------ composing
def _sweep_values(override) -> list[str]:
    """The values a sweep override stands for (an Optuna interval: its two ends)."""
    value = override.value()
    if isinstance(value, IntervalSweep):
        return [str(value.start), str(value.end)]
    return list(override.sweep_string_iterator())


def expand_sweeps(overrides: list[str]) -> list[list[str]]:
    """One override list per job of the sweep ``overrides`` describes (one if none is swept)."""
    parsed = OverridesParser.create().parse_overrides(normalise_task_args(overrides))
    choices = []
    for override in parsed:
        if override.is_sweep_override():
            key = override.get_key_element()
            choices.append([f"{key}={value}" for value in _sweep_values(override)])
        else:
            choices.append([override.input_line])
    return [list(job) for job in itertools.product(*choices)]


def compose_job(overrides: list[str]) -> None:
    """Compose and validate the training config as ``mtl-train`` would; raise on any error."""
    _compose_once(tuple(overrides))


@functools.cache
def _compose_once(overrides: tuple[str, ...]) -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    validate(cfg)


def _train_overrides(args: tuple[str, ...]) -> list[str]:
    """The config overrides among mtl-train's arguments (Hydra's own flags dropped)."""
    overrides, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in _FLAGS_WITH_VALUE:
            skip = True
        elif arg not in _FLAGS_WITHOUT_VALUE:
            assert not arg.startswith("-"), f"mtl-train flag {arg} is not known to the docs test"
            overrides.append(arg)
    return overrides


def check_train_args(args: tuple[str, ...]) -> None:
    """Every job of the (possibly swept) training command composes."""
    for job in expand_sweeps(_train_overrides(args)):
        compose_job(job)


# ------------------------------------------------------------------------------ checkers
def check_mtl_train(argv: tuple[str, ...]) -> None:
    check_train_args(argv[1:])


def check_module_train(argv: tuple[str, ...]) -> None:
    """``torchrun [options] -m mtl_cli.train ...`` or ``python -m mtl_cli.train ...``."""
    position = argv.index("mtl_cli.train")
    assert argv[position - 1] == "-m", argv
    launcher_options = argv[1 : position - 1]
    assert all(option.startswith("--") for option in launcher_options), (
        f"unexpected torchrun arguments {launcher_options}"
    )
    check_train_args(argv[position + 1 :])


def check_mtl_eval(argv: tuple[str, ...]) -> None:
    """mtl-eval's own settings parse; the config overrides compose on the default config."""
    _, overrides = split_arguments(list(argv[1:]))
    compose_job(normalise_task_args(overrides))


def check_mtl_report(argv: tuple[str, ...]) -> None:
    report_parser().parse_args(list(argv[1:]))


def check_mtl_predict(argv: tuple[str, ...]) -> None:
    """mtl-predict's settings are known, typed right, and the required ones are given."""
    parse_settings("mtl-predict", argv[1:], PREDICT_DEFAULTS, required=("ckpt", "input", "output"))


def check_mtl_export(argv: tuple[str, ...]) -> None:
    """mtl-export's settings are known and complete, and the format is one it writes."""
    settings = parse_settings("mtl-export", argv[1:], EXPORT_DEFAULTS, required=("ckpt", "format"))
    assert settings["format"] in EXPORT_FORMATS, f"format={settings['format']} is not one of {list(EXPORT_FORMATS)}"


def check_pip_install(argv: tuple[str, ...]) -> None:
    """``pip install -e .[extra]`` names extras that pyproject.toml declares."""
    target = argv[-1]
    assert argv[:3] == ("pip", "install", "-e") and target.startswith("."), argv
    extras = re.fullmatch(r"\.(?:\[([\w,]+)\])?", target)
    assert extras, f"unexpected install target {target}"
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in (extras.group(1) or "").split(","):
        assert not extra or extra in declared, f"extra [{extra}] is not in pyproject.toml"


def check_pytest(argv: tuple[str, ...]) -> None:
    """``python -m pytest [paths]``: the paths (or pyproject's testpaths) exist."""
    paths = [arg for arg in argv[3:] if not arg.startswith("-")]
    if not paths:
        paths = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    for path in paths:
        assert (REPO / path.split("::")[0]).exists(), f"{path} does not exist"


@functools.cache
def _script_help(script: str) -> str:
    """The ``--help`` text of a benchmark script, run in this process (torch is already loaded)."""
    out = io.StringIO()
    argv, path = sys.argv, list(sys.path)
    sys.argv = [script, "--help"]
    sys.path.insert(0, str((REPO / script).parent))  # as when run as a script: its folder first
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
            runpy.run_path(str(REPO / script), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = argv, path
    assert exited.value.code == 0, f"{script} --help exited with {exited.value.code}"
    return out.getvalue()


def check_benchmark(argv: tuple[str, ...]) -> None:
    """``python benchmarks/<script>.py``: the script's --help lists every flag used; --overrides compose."""
    script = argv[1]
    assert (REPO / script).is_file(), f"{script} does not exist"
    help_text = _script_help(script)
    for flag in (arg for arg in argv[2:] if arg.startswith("--")):
        assert re.search(rf"{re.escape(flag)}\b", help_text), f"{script} has no option {flag}"
    if "--overrides" in argv:
        start = argv.index("--overrides") + 1
        overrides = list(itertools.takewhile(lambda arg: not arg.startswith("--"), argv[start:]))
        compose_job(normalise_task_args(overrides))


def check_covered_elsewhere(prefix: str) -> Callable[[tuple[str, ...]], None]:
    test_file, marker = COVERED_BY[prefix]

    def check(argv: tuple[str, ...]) -> None:
        path = REPO / test_file
        assert path.is_file(), f"{shlex.join(argv)} is said to be covered by {test_file}, which does not exist"
        assert marker in path.read_text(), f"{test_file} does not run '{marker}'"

    return check


def checker_for(argv: tuple[str, ...]) -> Callable[[tuple[str, ...]], None] | None:
    """The check for a command, by its first words; None when the docs test does not know it."""
    line = shlex.join(argv)
    for prefix in COVERED_BY:
        if line.startswith(prefix):
            return check_covered_elsewhere(prefix)
    if argv[0] == "mtl-train":
        return check_mtl_train
    if argv[0] == "torchrun" and "mtl_cli.train" in argv:
        return check_module_train
    if argv[:3] == ("python", "-m", "mtl_cli.train"):
        return check_module_train
    if argv[0] == "mtl-eval":
        return check_mtl_eval
    if argv[0] == "mtl-report":
        return check_mtl_report
    if argv[0] == "mtl-predict":
        return check_mtl_predict
    if argv[0] == "mtl-export":
        return check_mtl_export
    if argv[:2] == ("pip", "install"):
        return check_pip_install
    if argv[:3] == ("python", "-m", "pytest"):
        return check_pytest
    if argv[0] == "python" and len(argv) > 1 and argv[1].startswith("benchmarks/"):
        return check_benchmark
    return None


# ------------------------------------------------------------------------------ tests
def test_the_docs_show_commands() -> None:
    assert len(ALL_COMMANDS) > 20
    assert {path.name for path in DOC_FILES} >= {"README.md", "tasks.md", "benchmarks.md", "architecture.md"}


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=str)
def test_doc_command(command: Command) -> None:
    check = checker_for(command.argv)
    assert check is not None, f"{command}: the docs test does not know this command; add a check to {__file__}"
    check(command.argv)


@pytest.mark.parametrize(
    "argv, error",
    [
        (("mtl-train", "-m", "task=cls,seg", "loss.weights.seg=0.5"), "loss.weights.seg"),
        (("mtl-train", "weighting=nonexistent"), "nonexistent"),
        (("torchrun", "--nproc_per_node=2", "-m", "mtl_cli.train", "trainer.epochs=abc"), "epochs"),
        (("pip", "install", "-e", ".[nonexistent]"), "nonexistent"),
        (("python", "benchmarks/bench_train.py", "--no-such-flag"), "no-such-flag"),
        (("mtl-predict", "ckpt=run", "input=photos", "output=out", "batchsize=4"), "batchsize"),
        (("mtl-predict", "ckpt=run", "input=photos"), "output="),
        (("mtl-export", "ckpt=run", "format=tflite"), "tflite"),
    ],
)
def test_checks_reject_broken_commands(argv: tuple[str, ...], error: str) -> None:
    check = checker_for(argv)
    assert check is not None
    with pytest.raises(Exception, match=error):
        check(argv)


@pytest.mark.parametrize("argv", [("ls", "outputs"), ("for", "w", "in", "1", "2;", "do")])
def test_unknown_commands_are_not_recognised(argv: tuple[str, ...]) -> None:
    assert checker_for(argv) is None


def test_placeholders_must_be_known(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```bash\nmtl-eval ckpt=outputs/<some run>\n```\n")
    with pytest.raises(AssertionError, match="placeholder"):
        doc_commands(page)
    page.write_text("```bash\nmtl-eval ckpt=outputs/<run> $UNSET\n```\n")
    with pytest.raises(AssertionError, match="UNSET"):
        doc_commands(page)


def test_expand_sweeps_gives_every_job() -> None:
    jobs = expand_sweeps(["task=seg+cls,seg", "optim.lr=1e-3,3e-3", "trainer.epochs=2"])
    assert len(jobs) == 4
    assert ["task=cls+seg", "optim.lr=0.001", "trainer.epochs=2"] in jobs


@pytest.mark.parametrize("args", [["--cfg", "job", "task=cls+seg"], ["--help"]])
def test_readme_commands_run_through_the_cli(args: list[str], tmp_path: Path) -> None:
    """The real mtl-train entry point, as the README shows it, in a subprocess."""
    readme = [command.argv for command in doc_commands(REPO / "README.md")]
    assert ("mtl-train", *args) in readme
    proc = run_cli("mtl_cli.train", args, cwd=tmp_path)
    assert ("tasks:" in proc.stdout) if "job" in args else ("weighting:" in proc.stdout)


def test_every_fence_has_a_language_and_text_blocks_hold_no_commands() -> None:
    for path in DOC_FILES:
        for start, language, lines in _fenced_blocks(path):
            where = f"{_shown(path)}:{start}"
            assert language in SHELL_LANGUAGES | OTHER_LANGUAGES, f"{where}: code block language '{language}'"
            if language == "text":
                for line in lines:
                    assert not line.startswith("$ "), f"{where}: a shell prompt in a text block; use ```console"
                    assert not re.match(r"(mtl-\w+|torchrun|pip) ", line), f"{where}: a command in a text block"


def test_readme_is_a_front_page() -> None:
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    readme_commands = {shlex.join(command.argv) for command in doc_commands(REPO / "README.md")}
    for setup in SETUP_COMMANDS:
        assert f"```bash\n{setup}\n```" in text, f"README lacks the set-up command {setup}"
        for part in setup.split(" && "):
            assert shlex.join(shlex.split(part)) in readme_commands


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    headings = [line.lstrip("#").strip() for line in path.read_text().splitlines() if re.match(r"#{1,6} ", line)]
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_relative_links_point_to_existing_files_and_headings() -> None:
    for path in DOC_FILES:
        for target in _LINK.findall(path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = path.parent / file_part if file_part else path
            where = f"{_shown(path)}: link {target}"
            assert linked.exists(), f"{where} points to nothing"
            if anchor:
                assert anchor in _anchors(linked), f"{where}: no such heading in {linked.name}"
