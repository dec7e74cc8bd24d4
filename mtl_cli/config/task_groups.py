"""The ``task`` config group: task names, task families and the registered task combinations.

``task=cls+seg`` is not a file: ``register_configs`` stores every combination of tasks
that one dataset provides (a task family) in Hydra's ConfigStore, in canonical order.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import yaml
from hydra.core.config_store import ConfigStore

from mtl_cli.config.paths import CONFIG_DIR
from mtl_cli.config.schema import MTLConfig
from mtl_cli.errors import UserError
from mtl_cli.tasks import kind_order


def known_task_names() -> list[str]:
    """The ``task`` config group's options, in canonical order: the YAML files plus registered kinds."""
    names = [p.stem for p in (CONFIG_DIR / "task").glob("*.yaml")]
    return sort_tasks(names + registered_tasks())


def registered_tasks() -> list[str]:
    """Task kinds registered at run time (``register_task_kind``) that have no YAML task file.

    Each is a task of its own name (``task=<kind>``); it combines with any dataset's tasks,
    the dataset providing its labels under ``data.tasks.<kind>``.
    """
    files = {p.stem for p in (CONFIG_DIR / "task").glob("*.yaml")}
    return [kind for kind in kind_order() if kind not in files]


def sort_tasks(names: list[str]) -> list[str]:
    """Sort task names into the canonical order: tasks named after a kind in the task
    registry's order (``task=seg+cls`` and ``task=cls+seg`` are the same run), the others
    alphabetically after them."""
    rank = {name: i for i, name in enumerate(kind_order())}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def _yaml_task_keys(path: Path) -> set[str]:
    tasks = (yaml.safe_load(path.read_text()) or {}).get("tasks") or {}
    return set(tasks)


@functools.lru_cache(maxsize=1)
def task_families() -> dict[str, tuple[str, ...]]:
    """For each data config, the task files (canonical order) whose tasks it provides.

    A task file may define several tasks (e.g. ``attribute_groups``). Only tasks of one
    family can be trained together, so combinations are registered within families: this
    keeps ``--help`` and the ConfigStore small however many datasets bring their own tasks.
    """
    files = {p.stem: _yaml_task_keys(p) for p in (CONFIG_DIR / "task").glob("*.yaml")}
    families = {}
    for path in sorted((CONFIG_DIR / "data").glob("*.yaml")):
        provided = _yaml_task_keys(path)
        families[path.stem] = tuple(sort_tasks([f for f, names in files.items() if names and names <= provided]))
    return families


def canonical_task_choice(choice: str, known: list[str] | None = None) -> str:
    """Turn ``"seg+cls"`` into ``"cls+seg"``; raise ``UserError`` naming an unknown task."""
    known = known_task_names() if known is None else known
    names = [n.strip() for n in choice.split("+")]
    for name in names:
        if name not in known:
            raise UserError(
                f"unknown task '{name}' in task={choice}; known tasks: {', '.join(known)} "
                f"(join several with '+', e.g. task=cls+seg)"
            )
    if len(set(names)) != len(names):
        raise UserError(f"task={choice} names a task twice; name each task once")
    families = _families_with_registered()
    if len(names) > 1 and not any(set(names) <= set(family) for family in families.values()):
        by_data = "; ".join(f"data={d}: {', '.join(f)}" for d, f in families.items() if f)
        raise UserError(
            f"task={choice}: no dataset provides all of these tasks; combine tasks of one dataset ({by_data})"
        )
    return "+".join(sort_tasks(names))


def _families_with_registered() -> dict[str, tuple[str, ...]]:
    """``task_families`` with every registered task kind (``registered_tasks``) in every family."""
    extra = registered_tasks()
    return {data: tuple(sort_tasks([*family, *extra])) for data, family in task_families().items()}


def register_configs() -> None:
    """Register the schema, a ``task`` option per registered kind without a YAML file, and
    every multi-task combination within a task family."""
    cs = ConfigStore.instance()
    cs.store(name="mtl_schema", node=MTLConfig)
    for kind in registered_tasks():
        node = {"tasks": {kind: {"kind": kind}}, "loss": {"weights": {kind: 1.0}}}
        cs.store(group="task", name=kind, node=node, package="_global_")
    combos: set[tuple[str, ...]] = set()
    for family in _families_with_registered().values():
        for k in range(2, len(family) + 1):
            combos.update(itertools.combinations(family, k))
    for combo in sorted(combos):
        cs.store(group="task", name="+".join(combo), node={"defaults": list(combo)}, package="_global_")
