"""Procedurally generated "shapes" scenes with consistent labels for seven tasks.

Every scene is rendered once from an explicit 3-D description and all labels are read
off that single render, so the tasks are genuinely related. ``scene`` samples the 3-D
descriptions, ``render`` draws them and reads off the labels, ``dataset`` serves them
(with an optional on-disk cache).
"""

from mtl_cli.data.shapes.dataset import ShapesDataset
from mtl_cli.data.shapes.render import FORMAT_VERSION, TASK_NAMES, generate_scenes
from mtl_cli.data.shapes.scene import NUM_SHAPE_CLASSES, SHAPE_NAMES

__all__ = [
    "SHAPE_NAMES",
    "NUM_SHAPE_CLASSES",
    "TASK_NAMES",
    "FORMAT_VERSION",
    "generate_scenes",
    "ShapesDataset",
]
