"""Rendering the "shapes" scenes: one z-buffered render per scene, every label read off it.

* image: Lambertian shading (random light direction + ambient term) of the per-pixel
  normals, times the albedo (object colour or textured background), plus Gaussian
  noise (per-image sigma in [0.01, 0.05]), clipped to ``[0, 1]``.

Labels (all derived from the *visible* surfaces only):

* ``seg``: ``0`` background, ``k + 1`` for shape kind ``k``.
* ``cls``: the shape kind with the most visible pixels, summed over all instances of
  that kind (i.e. ``argmax`` of the per-kind pixel counts of ``seg``; ties -> lowest
  kind index).  With one object per kind this is "the kind of the object covering
  the most visible pixels".
* ``multilabel``: kinds with at least one visible pixel.
* ``depth`` / ``normals``: the z-buffered surface, normals are exact unit normals of
  the surface that produced the depth.
* ``det``: one box per visible object instance, tight around its visible pixels
  (``xyxy``, exclusive right / bottom edges), its shape kind as class; instances with
  fewer than ``default_min_pixels(H, W)`` visible pixels (0.4 % of the image) are left
  out (:func:`mtl_cli.tasks.detection.boxes.instance_boxes`). Stored as
  ``[max_objects, 5]`` rows ``(x1, y1, x2, y2, kind)`` per scene, padded with kind ``-1``.
* ``edges``: ``1`` at every pixel whose visible *instance* differs from at least one
  of its 4-neighbours inside the image (both sides of a boundary are marked;
  background counts as one instance).  Two touching objects of the same kind
  therefore still produce an edge.

Every scene is guaranteed to show at least ``max(1, round(0.005 * H * W))`` object
pixels; scenes failing that are re-sampled (deterministically).

Generation is fully determined by ``(num, image_size, seed, max_objects)``: all
randomness comes from ``numpy.random.SeedSequence(seed)``; the global RNGs are never
touched.  Rendering is vectorised over pixels and over batches of scenes, and the
fixed-size batches are rendered on a small thread pool (results do not depend on the
number of threads).  Bit-identity is guaranteed for a given platform / NumPy build;
transcendental functions may differ in the last ulp across CPUs or NumPy versions.
"""

from __future__ import annotations

import functools
import os
import statistics
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mtl_cli.data.shapes import scene
from mtl_cli.data.shapes.scene import NUM_SHAPE_CLASSES, POLYGONS, TAN_HALF_FOV, normalize
from mtl_cli.tasks.detection.boxes import default_min_pixels, instance_boxes

TASK_NAMES: tuple[str, ...] = ("cls", "seg", "depth", "normals", "edges", "multilabel", "det")
"""Label keys produced by :func:`generate_scenes` (besides ``image``)."""

FORMAT_VERSION: int = 3
"""Bump whenever the generator's output changes; it is part of the cache key."""

_CHUNK = 128  # scenes per render batch (fixed: part of the deterministic noise stream)
_MAX_THREADS = 4


def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera-ray components ``U`` [W] and ``V`` [H]; the ray of pixel (r, c) is (U[c], V[r], -1)."""
    u = (np.arange(w) + 0.5) / w * 2.0 - 1.0
    v = 1.0 - (np.arange(h) + 0.5) / h * 2.0
    return (u * TAN_HALF_FOV).astype(np.float32), (v * TAN_HALF_FOV).astype(np.float32)


def _camera_rays(h: int, w: int) -> np.ndarray:
    """Rays ``[3, H, W]`` (z component -1) such that point = depth * ray."""
    uu, vv = _pixel_grid(h, w)
    rays = np.empty((3, h, w), dtype=np.float32)
    rays[0] = uu[None, :]
    rays[1] = vv[:, None]
    rays[2] = -1.0
    return rays


def _lin(coef: np.ndarray, uu: np.ndarray, vv: np.ndarray) -> np.ndarray:
    """Evaluate ``ray . coef`` for per-scene 3-vectors ``coef`` [b, 3] -> [b, H, W] (float32)."""
    c = coef.astype(np.float32)
    out = c[:, 0, None, None] * uu[None, None, :] + c[:, 1, None, None] * vv[None, :, None]
    out -= c[:, 2, None, None]
    return out


def _plane_basis(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal in-plane axes (e1, e2) for unit normals [..., 3]."""
    x = np.zeros_like(normal)
    x[..., 0] = 1.0
    e1 = normalize(x - np.sum(x * normal, axis=-1, keepdims=True) * normal)
    e2 = np.cross(normal, e1)
    return e1, e2


def _sphere_depth(centre: np.ndarray, radius: np.ndarray, uu: np.ndarray, vv: np.ndarray, rr: np.ndarray) -> np.ndarray:
    """Nearest ray/sphere intersection depth [b, H, W]; ``inf`` where the ray misses."""
    rc = _lin(centre, uu, vv)  # ray . C
    c2 = (np.sum(centre**2, axis=-1) - radius**2).astype(np.float32)
    disc = rc * rc
    disc -= rr[None] * c2[:, None, None]
    hit = disc >= 0
    np.sqrt(np.maximum(disc, 0, out=disc), out=disc)
    depth = rc - disc
    depth /= rr[None]
    depth[~hit] = np.inf
    return depth


def _polygon_depth(
    kind: int,
    centre: np.ndarray,
    normal: np.ndarray,
    radius: np.ndarray,
    rot: np.ndarray,
    uu: np.ndarray,
    vv: np.ndarray,
) -> np.ndarray:
    """Depth [b, H, W] of flat polygons of one ``kind`` on tilted planes; ``inf`` outside.

    A point ``t * r`` of the plane ``n . P = n . C`` lies outside the in-plane line
    ``(P - C) . g > d`` iff ``r . (c g - (d + C . g) n) < 0`` (``c = n . C < 0`` and
    ``n . r < 0`` for front-facing planes), i.e. polygon edges are image-space lines.
    """
    angles, dist, max_viol = POLYGONS[kind]
    e1, e2 = _plane_basis(normal)
    phi = rot[:, None] + angles[None, :]  # [b, L]
    g = np.cos(phi)[..., None] * e1[:, None, :] + np.sin(phi)[..., None] * e2[:, None, :]
    c = np.sum(normal * centre, axis=-1)  # [b]
    thr = dist * radius[:, None] + np.sum(centre[:, None, :] * g, axis=-1)  # [b, L]
    wvec = c[:, None, None] * g - thr[..., None] * normal[:, None, :]  # [b, L, 3]

    nr = _lin(normal, uu, vv)  # n . r  (< 0 where the plane faces the camera)
    viol = None
    for li in range(len(angles)):
        v = _lin(wvec[:, li], uu, vv) < 0
        if viol is None:
            viol = v.astype(np.uint8)
        else:
            viol += v
    inside = (viol <= max_viol) & (nr < 0)
    depth = c.astype(np.float32)[:, None, None] / nr
    depth[~inside] = np.inf
    return depth


@functools.lru_cache(maxsize=1)
def _gaussian_table() -> np.ndarray:
    """Standard-normal quantiles at the centres of 2**16 equal-probability bins (float32)."""
    inv_cdf = statistics.NormalDist().inv_cdf
    return np.array([inv_cdf((i + 0.5) / 65536.0) for i in range(65536)], dtype=np.float32)


def _gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard-normal float32 noise by inverse-CDF lookup of 16-bit uniform integers.

    ~3x faster than ``Generator.standard_normal``; the distribution is the normal law
    quantised to 65536 equiprobable values (|z| <= 4.3), ample for image noise.
    """
    idx = rng.integers(0, 65536, size=shape, dtype=np.uint16)
    return np.take(_gaussian_table(), idx)


def _render(
    p: dict[str, np.ndarray],
    h: int,
    w: int,
    noise_rng: np.random.Generator,
    out: dict[str, np.ndarray],
    want_meta: bool,
) -> None:
    """Render the scenes described by ``p`` into the (pre-allocated) arrays of ``out``."""
    b, s = p["kind"].shape
    k = NUM_SHAPE_CLASSES
    uu, vv = _pixel_grid(h, w)
    rr = uu[None, :] ** 2 + vv[:, None] ** 2 + np.float32(1.0)  # |r|^2, [H, W]

    # --- background plane through (0, 0, -D0) ---
    bg_n = p["bg_normal"]
    bg_p0 = np.zeros((b, 3))
    bg_p0[:, 2] = -p["bg_depth"]
    bg_c = np.sum(bg_n * bg_p0, axis=-1).astype(np.float32)
    bg_depth = _lin(bg_n, uu, vv)
    np.divide(bg_c[:, None, None], bg_depth, out=bg_depth)
    zbuf = out["depth"][:, 0]  # z-buffer directly in the output (contiguous view)
    zbuf[...] = bg_depth
    inst = np.zeros((b, h, w), dtype=np.uint8)
    if want_meta:
        out["bg_depth"][...] = bg_depth
        out["object_depth"][...] = np.inf

    # --- objects, z-buffered slot by slot ---
    for j in range(s):
        for kind in range(k):
            sel = np.nonzero(p["present"][:, j] & (p["kind"][:, j] == kind))[0]
            if sel.size == 0:
                continue
            if kind == 0:
                d = _sphere_depth(p["centre"][sel, j], p["radius"][sel, j], uu, vv, rr)
            else:
                d = _polygon_depth(
                    kind, p["centre"][sel, j], p["normal"][sel, j], p["radius"][sel, j], p["rot"][sel, j], uu, vv
                )
            z = zbuf[sel]
            closer = d < z
            np.copyto(z, d, where=closer)
            zbuf[sel] = z
            ii = inst[sel]
            ii[closer] = j + 1
            inst[sel] = ii
            if want_meta:
                out["object_depth"][sel, j] = d

    # --- per-instance tables (index 0 = background) gathered through `flat` ---
    flat = inst.astype(np.intp)
    flat += (np.arange(b) * (s + 1))[:, None, None]
    kind_tab = np.zeros((b, s + 1), dtype=np.int64)
    kind_tab[:, 1:] = np.where(p["present"], p["kind"] + 1, 0)
    np.take(kind_tab.ravel(), flat, out=out["seg"], mode="clip")

    normal_tab = np.empty((b, s + 1, 3), dtype=np.float32)
    normal_tab[:, 0] = bg_n
    normal_tab[:, 1:] = p["normal"]
    normals = out["normals"]
    for ch in range(3):
        np.take(normal_tab[:, :, ch].ravel(), flat, out=normals[:, ch], mode="clip")
    sph_tab = np.zeros((b, s + 1), dtype=bool)
    sph_tab[:, 1:] = p["present"] & (p["kind"] == 0)
    bi, yi, xi = np.nonzero(sph_tab.ravel()[flat])
    if bi.size:
        fi = flat[bi, yi, xi] - bi * (s + 1) - 1  # object slot
        t = zbuf[bi, yi, xi].astype(np.float64)
        pts = np.stack([t * uu[xi], t * vv[yi], -t], axis=-1)
        nrm = normalize(pts - p["centre"][bi, fi])
        normals[bi, :, yi, xi] = nrm.astype(np.float32)

    # --- edges: instance changes between 4-neighbours ---
    edges = np.zeros((b, h, w), dtype=bool)
    dv = inst[:, 1:, :] != inst[:, :-1, :]
    edges[:, 1:, :] |= dv
    edges[:, :-1, :] |= dv
    dh = inst[:, :, 1:] != inst[:, :, :-1]
    edges[:, :, 1:] |= dh
    edges[:, :, :-1] |= dh
    out["edges"][:, 0] = edges

    # --- per-instance / per-kind visible pixel counts -> cls, multilabel ---
    inst_count = np.bincount(flat.ravel(), minlength=b * (s + 1)).reshape(b, s + 1)
    kind_count = np.zeros((b, k + 1), dtype=np.int64)
    np.add.at(kind_count, (np.repeat(np.arange(b), s + 1), kind_tab.ravel()), inst_count.ravel())
    obj_count = kind_count[:, 1:]
    out["cls"][...] = np.argmax(obj_count, axis=1)
    out["multilabel"][...] = obj_count > 0
    out["_visible"][...] = obj_count.sum(axis=1)
    if want_meta:
        out["instance"][...] = inst
    _write_boxes(inst, p["kind"], out["det"])

    # --- image: Lambertian shading * albedo (+ checker texture on the background) ---
    ldir = p["light_dir"].astype(np.float32)
    shade = normals[:, 0] * ldir[:, 0, None, None]
    shade += normals[:, 1] * ldir[:, 1, None, None]
    shade += normals[:, 2] * ldir[:, 2, None, None]
    np.maximum(shade, 0, out=shade)
    amb = p["ambient"].astype(np.float32)[:, None, None]
    shade *= 1 - amb
    shade += amb

    e1, e2 = _plane_basis(bg_n)
    a = bg_depth * _lin(e1, uu, vv)
    a -= np.sum(e1 * bg_p0, axis=-1).astype(np.float32)[:, None, None]
    c = bg_depth * _lin(e2, uu, vv)
    c -= np.sum(e2 * bg_p0, axis=-1).astype(np.float32)[:, None, None]
    inv_sq = (1.0 / p["bg_check"]).astype(np.float32)[:, None, None]
    a *= inv_sq
    c *= inv_sq
    np.floor(a, out=a)
    np.floor(c, out=c)
    a += c
    a *= 0.5
    np.floor(a, out=c)
    a -= c  # checker parity: 0 or 0.5
    a *= 4.0
    a -= 1.0  # -> -1 or +1
    a *= p["bg_contrast"].astype(np.float32)[:, None, None]
    a += 1.0
    a[inst != 0] = 1.0  # texture only on the background
    shade *= a

    color_tab = np.empty((b, s + 1, 3), dtype=np.float32)
    color_tab[:, 0] = p["bg_color"]
    color_tab[:, 1:] = p["color"]
    image = out["image"]
    for ch in range(3):
        np.take(color_tab[:, :, ch].ravel(), flat, out=image[:, ch], mode="clip")
    image *= shade[:, None]
    noise = _gaussian_noise(noise_rng, image.shape)
    noise *= p["noise"].astype(np.float32)[:, None, None, None]
    image += noise
    np.clip(image, 0.0, 1.0, out=image)


def _write_boxes(inst: np.ndarray, kinds: np.ndarray, det: np.ndarray) -> None:
    """``det`` rows ``(x1, y1, x2, y2, kind)`` of every visible instance (min-pixels rule), padded with -1."""
    h, w = inst.shape[-2:]
    boxes, counts = instance_boxes(inst, kinds.shape[1])
    keep = counts >= default_min_pixels(h, w)
    order = np.argsort(~keep, axis=1, kind="stable")  # kept instances first, in instance order
    kept = np.take_along_axis(keep, order, axis=1)
    det[..., :4] = np.where(kept[..., None], np.take_along_axis(boxes, order[..., None], axis=1), 0)
    det[..., 4] = np.where(kept, np.take_along_axis(kinds, order, axis=1), -1)


def _alloc(n: int, h: int, w: int, s: int, want_meta: bool) -> dict[str, np.ndarray]:
    k = NUM_SHAPE_CLASSES
    out = {
        "image": np.empty((n, 3, h, w), dtype=np.float32),
        "cls": np.empty((n,), dtype=np.int64),
        "seg": np.empty((n, h, w), dtype=np.int64),
        "depth": np.empty((n, 1, h, w), dtype=np.float32),
        "normals": np.empty((n, 3, h, w), dtype=np.float32),
        "edges": np.empty((n, 1, h, w), dtype=np.float32),
        "multilabel": np.empty((n, k), dtype=np.float32),
        "det": np.empty((n, s, 5), dtype=np.float32),
        "_visible": np.empty((n,), dtype=np.int64),
    }
    if want_meta:
        out["instance"] = np.empty((n, h, w), dtype=np.uint8)
        out["bg_depth"] = np.empty((n, h, w), dtype=np.float32)
        out["object_depth"] = np.empty((n, s, h, w), dtype=np.float32)
    return out


def _render_all(
    p: dict[str, np.ndarray], h: int, w: int, noise_ss: np.random.SeedSequence, want_meta: bool
) -> dict[str, np.ndarray]:
    n, s = p["kind"].shape
    out = _alloc(n, h, w, s, want_meta)
    starts = list(range(0, n, _CHUNK))
    seeds = noise_ss.spawn(len(starts))  # spawned in order, in this thread -> deterministic
    _gaussian_table()  # build the (cached) noise table before starting threads

    def job(i: int) -> None:
        sl = slice(starts[i], starts[i] + _CHUNK)
        _render(
            {key: v[sl] for key, v in p.items()},
            h,
            w,
            np.random.default_rng(seeds[i]),
            {key: v[sl] for key, v in out.items()},
            want_meta,
        )

    workers = min(_MAX_THREADS, os.cpu_count() or 1, len(starts))
    if workers <= 1:
        for i in range(len(starts)):
            job(i)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(job, range(len(starts))))
    return out


def _generate(num: int, image_size: int, seed: int, max_objects: int = 3, return_meta: bool = False) -> dict[str, Any]:
    """Implementation of :func:`generate_scenes`; ``return_meta`` adds ground-truth extras
    (``instance``, ``bg_depth``, ``object_depth`` [N, S, H, W] with ``inf`` where the object
    is absent, and ``params``) used by the tests."""
    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    if image_size < 4:
        raise ValueError(f"image_size must be >= 4, got {image_size}")
    if not 1 <= max_objects <= 254:  # instance ids are stored as uint8
        raise ValueError(f"max_objects must be in [1, 254], got {max_objects}")
    h = w = int(image_size)
    param_ss, noise_ss = np.random.SeedSequence(int(seed)).spawn(2)
    rng = np.random.default_rng(param_ss)
    params = scene.sample_params(rng, num, max_objects)
    out = _render_all(params, h, w, noise_ss, return_meta)
    min_visible = max(1, round(0.005 * h * w))
    for _ in range(1000):
        bad = np.nonzero(out["_visible"] < min_visible)[0]
        if bad.size == 0:
            break
        new_p = scene.sample_params(rng, bad.size, max_objects)
        new_out = _render_all(new_p, h, w, noise_ss, return_meta)
        for key, v in new_p.items():
            params[key][bad] = v
        for key, v in new_out.items():
            out[key][bad] = v
    else:  # pragma: no cover - practically unreachable
        raise RuntimeError("could not generate scenes with a visible object")
    del out["_visible"]
    if return_meta:
        out["params"] = params
    return out


def generate_scenes(num: int, image_size: int, seed: int, max_objects: int = 3) -> dict[str, np.ndarray]:
    """Render `num` scenes. Returns numpy arrays:
      image:      float32 [N,3,H,W] in [0,1]
      cls:        int64  [N]      image-level class = shape kind (0..K-1) with the most visible
                                  pixels (summed over its instances; == argmax of seg counts)
      seg:        int64  [N,H,W]  0 = background, 1..K = shape kind + 1
      depth:      float32 [N,1,H,W] metric depth (> 0 everywhere; background is a slanted ground/wall plane), z-buffered with occlusion
      normals:    float32 [N,3,H,W] unit surface normals (camera frame, z toward the camera), consistent with the depth geometry
      edges:      float32 [N,1,H,W] 1 on object boundaries (where the visible object instance changes between
                                  4-neighbours, incl. object/background; both sides marked), else 0
      multilabel: float32 [N,K] 1 if that shape kind is visible in the image
      det:        float32 [N,S,5] rows (x1, y1, x2, y2, kind) of the visible instances (S = max_objects),
                                  padded with kind -1 (see the module docstring for the min-pixels rule)

    Deterministic in ``(num, image_size, seed, max_objects)``; every scene shows at least
    one object. See the module docstring for the camera model and scene content.
    """
    return _generate(num, image_size, seed, max_objects, return_meta=False)
