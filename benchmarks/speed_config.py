"""Overrides shared by the benchmarks that time training steps."""

FULL_SIZE = "trainer.progressive_resize=[]"
"""Time every step at the full input size: the default trains its first epochs on smaller inputs
(``trainer.progressive_resize``), and these benchmarks time steps of epoch 1."""
