"""Leaf helpers shared by several layers; this package imports nothing else of ``mtl_cli``.

* ``files``: atomic writes and copies, JSON files, the append-only CSV log.
* ``collectives``: ``torch.distributed`` reductions that are no-ops in one process.
* ``mappings``: flattening nested mappings to dotted keys.
* ``metric_keys``: the ``<task>.<metric>`` names used by ``trainer.monitor`` and ``sweep.objective``.
"""
