"""Scene sampling for the "shapes" data: the explicit 3-D description of each scene.

* camera: pinhole, 60 degree field of view, looking down ``-z``; camera frame has
  ``x`` to the right, ``y`` up and ``z`` toward the camera.  ``depth`` is the metric
  distance along the optical axis (``-z`` of the 3-D point), so the 3-D point seen at
  pixel ``(row, col)`` is ``depth * (u * tan(fov/2), v * tan(fov/2), -1)`` with
  ``u, v`` the pixel centre in ``[-1, 1]`` (``v`` pointing up).
* background: one slanted plane (mostly a floor receding toward the top of the image,
  sometimes a tilted wall) with a perspective-correct checkerboard texture.
* objects (1..``max_objects`` per scene): ``circle`` is a sphere, ``square`` /
  ``triangle`` / ``star`` (pentagram) are flat polygons on planes slanted by up to
  50 degrees w.r.t. the line of sight (perspective-correct foreshortening).  Sizes
  (normalised so every kind covers about the same area), positions (objects may
  leave the frame), in-plane rotations, slants, depths and colours are random;
  colour is independent of the shape kind (only kept away from the background
  colour).  A z-buffer resolves occlusion between objects and against the
  background plane (objects may also sink partly into the floor).

All randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import numpy as np

SHAPE_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star")
"""Shape kinds; index ``k`` is class ``k`` for ``cls``/``multilabel`` and ``k + 1`` in ``seg``."""

NUM_SHAPE_CLASSES: int = len(SHAPE_NAMES)
"""Number of shape kinds (``K``)."""

TAN_HALF_FOV = float(np.tan(np.deg2rad(30.0)))  # 60 degree field of view

_CENTER_RANGE = 0.8  # object centres, normalised image coords
_DEPTH_RANGE = (3.0, 7.5)  # object centre depth
_SIZE_RANGE = (0.22, 0.50)  # area-equivalent projected radius, normalised image coords
_MAX_TILT = np.deg2rad(50.0)  # slant of flat shapes w.r.t. the line of sight
_BG_DEPTH_RANGE = (9.0, 12.0)  # background depth at the image centre
_COLOR_CANDIDATES = 4
_MIN_COLOR_DIST = 0.35  # min RGB distance object colour <-> background colour (if possible)

# Flat polygons as half-plane sets in their own plane (units of circumradius):
# (normal angles of the bounding lines, line distance, max violated lines allowed).
POLYGONS: dict[int, tuple[np.ndarray, float, int]] = {
    1: (np.pi / 4 + np.arange(4) * np.pi / 2, float(np.cos(np.pi / 4)), 0),  # square
    2: (np.pi / 3 + np.arange(3) * 2 * np.pi / 3, float(np.cos(np.pi / 3)), 0),  # triangle
    # pentagram: the 5 lines through every second vertex; inside <=> at most 1 violated
    3: (np.arange(5) * 2 * np.pi / 5, float(np.cos(2 * np.pi / 5)), 1),  # star
}
# Area of each shape for circumradius 1 (circle -> projected disc of the sphere).
_AREA = np.array(
    [
        np.pi,
        2.0,
        3.0 * np.sqrt(3.0) / 4.0,
        10.0 * 0.5 * (np.cos(2 * np.pi / 5) / np.cos(np.pi / 5)) * np.sin(np.pi / 5),
    ]
)


def normalize(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to unit length along its last axis."""
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def sample_params(rng: np.random.Generator, n: int, max_objects: int) -> dict[str, np.ndarray]:
    """Sample the 3-D description of ``n`` scenes (object slots padded to ``max_objects``)."""
    s, k = max_objects, NUM_SHAPE_CLASSES
    n_obj = rng.integers(1, max_objects + 1, size=n)
    present = np.arange(s)[None, :] < n_obj[:, None]
    kind = rng.integers(0, k, size=(n, s))
    uv = rng.uniform(-_CENTER_RANGE, _CENTER_RANGE, size=(n, s, 2))
    t0 = rng.uniform(*_DEPTH_RANGE, size=(n, s))
    size = rng.uniform(*_SIZE_RANGE, size=(n, s))
    rot = rng.uniform(0.0, 2 * np.pi, size=(n, s))
    tilt = _MAX_TILT * np.sqrt(rng.uniform(0.0, 1.0, size=(n, s)))
    tilt_az = rng.uniform(0.0, 2 * np.pi, size=(n, s))
    color_cand = rng.uniform(0.1, 1.0, size=(n, s, _COLOR_CANDIDATES, 3))

    bg_depth = rng.uniform(*_BG_DEPTH_RANGE, size=n)
    bg_tilt = np.stack([rng.uniform(-0.3, 0.3, size=n), rng.uniform(-0.35, 0.9, size=n)], axis=1)
    bg_color = rng.uniform(0.2, 0.85, size=(n, 3))
    bg_check = rng.uniform(1.0, 2.5, size=n)  # checker square size (world units)
    bg_contrast = rng.uniform(0.08, 0.25, size=n)
    light = rng.uniform(-0.9, 0.9, size=(n, 2))
    ambient = rng.uniform(0.15, 0.35, size=n)
    noise = rng.uniform(0.01, 0.05, size=n)

    # --- derived geometry (float64 here, per object, cheap) ---
    centre = t0[..., None] * np.stack(
        [uv[..., 0] * TAN_HALF_FOV, uv[..., 1] * TAN_HALF_FOV, -np.ones_like(t0)], axis=-1
    )
    # flat shapes: normal tilted by `tilt` away from the direction toward the camera, so
    # every polygon is seen at a slant <= _MAX_TILT (no degenerate edge-on slivers)
    view = normalize(-centre)
    ax1 = normalize(np.cross(view, np.array([0.0, 1.0, 0.0])))
    ax2 = np.cross(view, ax1)
    normal = np.cos(tilt)[..., None] * view + np.sin(tilt)[..., None] * (
        np.cos(tilt_az)[..., None] * ax1 + np.sin(tilt_az)[..., None] * ax2
    )
    is_sphere = kind == 0
    normal[is_sphere] = (0.0, 0.0, 1.0)  # unused for spheres
    # world circumradius such that the visible area ~ pi * size^2 for every kind
    # (flat shapes compensated for foreshortening) -> balanced dominant classes.
    radius = size * t0 * TAN_HALF_FOV * np.sqrt(np.pi / _AREA[kind])
    radius = np.where(is_sphere, radius, radius / np.sqrt(np.cos(tilt)))

    # object colour: independent of the kind; the first candidate that differs enough from
    # the background colour (else the most different one) so objects are not camouflaged
    dist = np.linalg.norm(color_cand - bg_color[:, None, None, :], axis=-1)  # [n, s, C]
    ok = dist >= _MIN_COLOR_DIST
    pick = np.where(ok.any(-1), np.argmax(ok, axis=-1), np.argmax(dist, axis=-1))
    color = np.take_along_axis(color_cand, pick[..., None, None], axis=2)[:, :, 0]

    bg_normal = normalize(np.concatenate([bg_tilt, np.ones((n, 1))], axis=1))
    light_dir = normalize(np.concatenate([light, np.ones((n, 1))], axis=1))
    return {
        "present": present,
        "kind": kind,
        "centre": centre,
        "normal": normal,
        "radius": radius,
        "rot": rot,
        "color": color,
        "bg_depth": bg_depth,
        "bg_normal": bg_normal,
        "bg_color": bg_color,
        "bg_check": bg_check,
        "bg_contrast": bg_contrast,
        "light_dir": light_dir,
        "ambient": ambient,
        "noise": noise,
    }
