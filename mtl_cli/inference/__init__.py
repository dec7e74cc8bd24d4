"""Using a trained model: rebuild it from a checkpoint, predict on image files, export it."""
