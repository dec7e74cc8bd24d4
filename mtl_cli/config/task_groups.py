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

# Preferred order in which tasks are listed and stored; tasks not listed here follow
# alphabetically. ``task=seg+cls`` and ``task=cls+seg`` are the same run.
PREFERRED_TASK_ORDER = ("cls", "seg", "depth", "normals", "edges", "multilabel")


def known_task_names() -> list[str]:
    """The task names that have a YAML file in the ``task`` config group, in canonical order."""
    names = [p.stem for p in (CONFIG_DIR / "task").glob("*.yaml")]
    return sort_tasks(names)


def sort_tasks(names: list[str]) -> list[str]:
    """Sort task names into the canonical order."""
    rank = {name: i for i, name in enumerate(PREFERRED_TASK_ORDER)}
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
    families = task_families()
    if len(names) > 1 and not any(set(names) <= set(family) for family in families.values()):
        by_data = "; ".join(f"data={d}: {', '.join(f)}" for d, f in families.items() if f)
        raise UserError(
            f"task={choice}: no dataset provides all of these tasks; combine tasks of one dataset ({by_data})"
        )
    return "+".join(sort_tasks(names))


def register_configs() -> None:
    """Register the schema and every multi-task combination within a task family."""
    cs = ConfigStore.instance()
    cs.store(name="mtl_schema", node=MTLConfig)
    combos: set[tuple[str, ...]] = set()
    for family in task_families().values():
        for k in range(2, len(family) + 1):
            combos.update(itertools.combinations(family, k))
    for combo in sorted(combos):
        cs.store(group="task", name="+".join(combo), node={"defaults": list(combo)}, package="_global_")
