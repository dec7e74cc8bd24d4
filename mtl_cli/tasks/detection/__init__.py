"""Object detection (``det``): one box per visible object instance, its shape kind as class.

Conventions, shared by every module of this package:

* **Coordinates.** Boxes are ``xyxy`` in input-image pixels with *exclusive* right /
  bottom edges: pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``, so a
  box tight around columns ``c0..c1`` and rows ``r0..r1`` is ``(c0, r0, c1 + 1, r1 + 1)``
  and ``x2 - x1`` counts pixel columns. Flips and resizes then move box edges with the
  same affine map as pixel edges. Labels are the shape kind ``0..K-1`` (seg class - 1).
* **Min-pixels rule.** An instance becomes a box only if at least ``min_pixels`` of
  its pixels are visible (after occlusion and the image border); slivers that peek
  out from behind another object carry too little of the shape to name its kind.
* **Crop rule** (joint transforms). Under a scale-crop each box is shifted into the
  crop and clipped to it; it is dropped when less than ``MIN_VISIBLE_FRACTION`` (25 %)
  of its area stays inside the crop, or when it is under 1 px wide or high after the
  resize back to the input size. A horizontal flip mirrors the box edges. In the
  order of ``JointTransform.random_geometry``: ``crop_resize_boxes`` with the same
  ``(top, left, height, width)`` crop, then ``hflip_boxes`` with the output width.
* **Head choice: CenterNet-style** (one stride-4 centre heatmap per class plus a box
  per cell), not FCOS. The built-in scenes are 64 px images with objects about 10-35
  px across: a single stride-4 grid (16 x 16) resolves every object centre, while
  FCOS's stride-8..32 pyramid would put most objects on a 2x2..8x8 grid and needs
  per-level size ranges tuned to such a narrow size spread. Peak picking makes the
  output nearly duplicate-free (class-wise NMS only cleans up), and the head has no
  anchors or level-assignment hyper-parameters. Multi-scale backbones are still used:
  a list of feature maps is fused on the stride-4 grid (a light FPN). Box regression
  uses GIoU around each centre (as TTFNet), the heatmap CenterNet's penalty-reduced
  focal loss, both from ``torchvision.ops``.
* **Decoding** (peaks, top-k, NMS) happens only at validation; training only needs
  the raw output and :func:`~mtl_cli.tasks.detection.loss.detection_loss`.

Modules: ``boxes`` (labels and their geometry), ``head`` (network, decoding),
``loss`` (target encoding, ``L_det``), ``metric`` (COCO mAP accumulator), ``task``
(the ``det`` task kind built from them).
"""
