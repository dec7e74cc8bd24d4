"""Task relationships: a given or learned task-relation matrix and what is done with it.

- ``matrix``: read and check a relation matrix R from the config (``relation.matrix``).
- ``regularizer``: lambda * sum_ij R_ij ||theta_i - theta_j||^2 over same-shaped task blocks.
- ``affinity``: measured inter-task affinity (gradient cosine, lookahead of Fifty et al. 2021).
- ``grouping``: the task grouping an affinity matrix suggests.
- ``records``: ``relations.csv`` and the heatmap.
- ``learner``: ``build_relation``, the hooks the trainer calls.

This package's ``__init__`` imports nothing, so ``mtl_cli.config`` can use ``matrix`` cheaply.
"""
