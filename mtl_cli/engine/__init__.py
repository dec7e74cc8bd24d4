"""Training loop, evaluation, checkpoints and run records."""
