"""Tests for the procedural multi-task shapes dataset (mtl_cli.data.shapes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtl_cli.data.shapes import (
    FORMAT_VERSION,
    NUM_SHAPE_CLASSES,
    SHAPE_NAMES,
    TASK_NAMES,
    ShapesDataset,
    dataset,
    generate_scenes,
    render,
    scene,
)

K = NUM_SHAPE_CLASSES
KEYS = ("image", *TASK_NAMES)


@pytest.fixture(scope="module")
def scenes() -> dict:
    """64 scenes at 48x48 with ground-truth extras (instance map, per-object depths, params)."""
    return render._generate(64, 48, seed=123, max_objects=3, return_meta=True)


def _bit_identical(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes() for k in a
    )


# --------------------------------------------------------------------------- API / shapes
def test_constants() -> None:
    assert SHAPE_NAMES == ("circle", "square", "triangle", "star")
    assert K == len(SHAPE_NAMES) == 4
    assert set(TASK_NAMES) == {"cls", "seg", "depth", "normals", "edges", "multilabel", "det"}
    assert isinstance(FORMAT_VERSION, int)


def test_generate_shapes_dtypes_and_ranges() -> None:
    n, s = 16, 32
    d = generate_scenes(n, s, seed=0)
    expected = {
        "image": ((n, 3, s, s), np.float32),
        "cls": ((n,), np.int64),
        "seg": ((n, s, s), np.int64),
        "depth": ((n, 1, s, s), np.float32),
        "normals": ((n, 3, s, s), np.float32),
        "edges": ((n, 1, s, s), np.float32),
        "multilabel": ((n, K), np.float32),
        "det": ((n, 3, 5), np.float32),  # max_objects box rows, padded with label -1
    }
    assert set(d) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert d[key].shape == shape, key
        assert d[key].dtype == dtype, key
        assert d[key].flags.c_contiguous, key
    assert d["image"].min() >= 0.0 and d["image"].max() <= 1.0
    assert d["image"].std() > 0.05  # not a blank render
    assert np.isfinite(d["depth"]).all() and (d["depth"] > 0).all()
    assert d["seg"].min() >= 0 and d["seg"].max() <= K
    assert ((d["cls"] >= 0) & (d["cls"] < K)).all()
    assert set(np.unique(d["edges"])) <= {0.0, 1.0}
    assert set(np.unique(d["multilabel"])) <= {0.0, 1.0}


def test_generate_edge_cases() -> None:
    d = generate_scenes(0, 16, seed=0)
    assert d["image"].shape == (0, 3, 16, 16) and d["cls"].shape == (0,)
    d = generate_scenes(3, 24, seed=5, max_objects=1)
    assert (d["multilabel"].sum(1) == 1).all()  # exactly one object per scene
    with pytest.raises(ValueError):
        generate_scenes(2, 16, seed=0, max_objects=0)


def test_every_scene_has_a_visible_object(scenes) -> None:
    visible = (scenes["seg"] > 0).sum(axis=(1, 2))
    assert (visible >= max(1, round(0.005 * 48 * 48))).all()
    assert (scenes["multilabel"].sum(1) >= 1).all()


def test_invisible_scenes_are_resampled(monkeypatch) -> None:
    """Scenes whose objects are all hidden (here: often behind the background) are redrawn."""
    monkeypatch.setattr(scene, "_DEPTH_RANGE", (8.0, 20.0))
    calls = []
    orig = scene.sample_params

    def counting(rng, n, max_objects):
        calls.append(n)
        return orig(rng, n, max_objects)

    monkeypatch.setattr(scene, "sample_params", counting)
    a = render._generate(48, 32, seed=9, max_objects=2, return_meta=True)
    assert len(calls) > 1  # the resampling path was exercised
    assert ((a["seg"] > 0).sum(axis=(1, 2)) >= 5).all()
    np.testing.assert_array_equal(a["instance"] == 0, a["seg"] == 0)
    b = render._generate(48, 32, seed=9, max_objects=2)
    assert _bit_identical({k: a[k] for k in b}, b)


def test_dataset_item_all_tasks() -> None:
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    ds = ShapesDataset(8, 32, seed=1, tasks=TASK_NAMES, mean=mean, std=std)
    assert len(ds) == 8
    item = ds[3]
    assert set(item) == set(KEYS)
    expected = {
        "image": ((3, 32, 32), torch.float32),
        "cls": ((), torch.int64),
        "seg": ((32, 32), torch.int64),
        "depth": ((1, 32, 32), torch.float32),
        "normals": ((3, 32, 32), torch.float32),
        "edges": ((1, 32, 32), torch.float32),
        "multilabel": ((K,), torch.float32),
    }
    for key, (shape, dtype) in expected.items():
        assert tuple(item[key].shape) == shape, key
        assert item[key].dtype == dtype, key
    raw = generate_scenes(8, 32, seed=1)
    want = (raw["image"][3] - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    np.testing.assert_allclose(item["image"].numpy(), want, rtol=1e-6, atol=1e-6)
    for key in TASK_NAMES:
        np.testing.assert_array_equal(item[key].numpy(), raw[key][3])
    # batching through a DataLoader works
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["cls"].shape == (4,)


def test_dataset_task_restriction() -> None:
    ds = ShapesDataset(4, 32, seed=2, tasks=["seg", "depth"])
    assert set(ds[0]) == {"image", "seg", "depth"}
    assert set(ShapesDataset(4, 32, seed=2, tasks=["cls"])[1]) == {"image", "cls"}
    with pytest.raises(ValueError):
        ShapesDataset(4, 32, seed=2, tasks=["seg", "segmentation"])


# --------------------------------------------------------------------------- determinism / cache
def test_determinism_same_seed_identical_different_seed_differs() -> None:
    a = generate_scenes(20, 32, seed=7)
    b = generate_scenes(20, 32, seed=7)
    assert _bit_identical(a, b)
    c = generate_scenes(20, 32, seed=8)
    assert not np.array_equal(a["image"], c["image"])
    assert not np.array_equal(a["seg"], c["seg"])


def test_determinism_independent_of_threads_and_global_rng(monkeypatch) -> None:
    monkeypatch.setattr(render, "_CHUNK", 8)  # several chunks
    np_state = np.random.get_state()
    torch_state = torch.random.get_rng_state().clone()
    monkeypatch.setattr(render, "_MAX_THREADS", 1)
    a = generate_scenes(40, 32, seed=11)
    monkeypatch.setattr(render, "_MAX_THREADS", 4)
    np.random.seed(999)  # perturbing global RNGs must not matter either
    torch.manual_seed(999)
    b = generate_scenes(40, 32, seed=11)
    assert _bit_identical(a, b)
    np.random.set_state(np_state)
    torch.random.set_rng_state(torch_state)


def test_generate_does_not_touch_global_rng() -> None:
    before_np = np.random.get_state()[1].copy()
    before_torch = torch.random.get_rng_state().clone()
    generate_scenes(4, 16, seed=3)
    assert np.array_equal(np.random.get_state()[1], before_np)
    assert torch.equal(torch.random.get_rng_state(), before_torch)


def test_cache_round_trip_bit_identical(tmp_path, monkeypatch) -> None:
    ds1 = ShapesDataset(12, 32, seed=4, tasks=TASK_NAMES, cache_dir=str(tmp_path))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].endswith(".npz"), files  # no temp file left behind
    with np.load(tmp_path / files[0]) as f:
        cached = {k: f[k] for k in f.files}
    assert _bit_identical(cached, generate_scenes(12, 32, seed=4))

    def boom(*args, **kwargs):
        raise AssertionError("should have loaded from the cache")

    monkeypatch.setattr(dataset, "generate_scenes", boom)
    ds2 = ShapesDataset(12, 32, seed=4, tasks=TASK_NAMES, cache_dir=str(tmp_path))
    for i in (0, 5, 11):
        a, b = ds1[i], ds2[i]
        assert set(a) == set(b)
        for key in a:
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    assert torch.equal(ds1._image, ds2._image)
    monkeypatch.undo()
    # other parameters -> other cache file
    ShapesDataset(12, 32, seed=5, tasks=["cls"], cache_dir=str(tmp_path))
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_corrupt_cache_is_regenerated(tmp_path) -> None:
    path = dataset._cache_path(tmp_path, 6, 16, 3, 3)
    path.write_bytes(b"not an npz")
    ds = ShapesDataset(6, 16, seed=3, tasks=["seg"], cache_dir=str(tmp_path))
    np.testing.assert_array_equal(ds[2]["seg"].numpy(), generate_scenes(6, 16, seed=3)["seg"][2])
    with np.load(path) as f:
        assert f["seg"].shape == (6, 16, 16)


# --------------------------------------------------------------------------- cross-task consistency
def test_background_pixels_are_the_background_plane(scenes) -> None:
    seg, inst = scenes["seg"], scenes["instance"]
    depth, bg = scenes["depth"][:, 0], scenes["bg_depth"]
    np.testing.assert_array_equal(seg == 0, inst == 0)
    bgm = seg == 0
    np.testing.assert_array_equal(depth[bgm], bg[bgm])
    assert (depth[~bgm] < bg[~bgm]).all()  # objects are in front of the plane they cover
    # background normal = the plane's normal, constant per image
    bn = scenes["params"]["bg_normal"].astype(np.float32)  # [N, 3]
    nrm = scenes["normals"].transpose(0, 2, 3, 1)  # [N, H, W, 3]
    np.testing.assert_allclose(nrm[bgm], np.broadcast_to(bn[:, None, None], nrm.shape)[bgm], atol=1e-6)
    # the background plane recedes: a floor (normal tilted up) is deeper toward the top
    for i in np.nonzero(bn[:, 1] > 0.2)[0]:
        assert bg[i, 0].mean() > bg[i, -1].mean()


def test_normals_unit_and_front_facing(scenes) -> None:
    n = scenes["normals"]
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-4)
    rays = render._camera_rays(48, 48)
    assert ((n * rays[None]).sum(1) < 0).all()  # every visible surface faces the camera


def test_normals_consistent_with_depth(scenes) -> None:
    """Normals of back-projected depth (finite differences) match the normal maps."""
    rays = render._camera_rays(48, 48)
    pts = scenes["depth"] * rays[None]  # [N, 3, H, W] 3-D points
    inst = scenes["instance"]
    c = inst[:, 1:-1, 1:-1]
    interior = (
        (inst[:, :-2, 1:-1] == c) & (inst[:, 2:, 1:-1] == c) & (inst[:, 1:-1, :-2] == c) & (inst[:, 1:-1, 2:] == c)
    )
    dx = pts[:, :, 1:-1, 2:] - pts[:, :, 1:-1, :-2]  # toward +x (right)
    dy = pts[:, :, :-2, 1:-1] - pts[:, :, 2:, 1:-1]  # toward +y (up)
    fd = np.cross(dx, dy, axis=1)
    fd /= np.linalg.norm(fd, axis=1, keepdims=True)
    cos = (fd * scenes["normals"][:, :, 1:-1, 1:-1]).sum(1)
    seg = scenes["seg"][:, 1:-1, 1:-1]
    flat = interior & (seg != 1)
    sphere = interior & (seg == 1)
    assert flat.sum() > 1000 and sphere.sum() > 100
    assert cos[flat].min() > 0.999
    assert np.median(cos[sphere]) > 0.995 and cos[sphere].min() > 0.95


def test_depth_matches_object_geometry(scenes) -> None:
    """Visible depth lies on the sphere / plane of the visible object."""
    p = scenes["params"]
    rays = render._camera_rays(48, 48).astype(np.float64)
    inst = scenes["instance"]
    for i in range(inst.shape[0]):
        for j in range(p["kind"].shape[1]):
            m = inst[i] == j + 1
            if not m.any():
                continue
            pts = scenes["depth"][i, 0][m].astype(np.float64)[:, None] * rays[:, m].T  # [M, 3]
            rel = pts - p["centre"][i, j]
            if p["kind"][i, j] == 0:
                np.testing.assert_allclose(np.linalg.norm(rel, axis=1), p["radius"][i, j], rtol=2e-3)
            else:
                np.testing.assert_allclose(rel @ p["normal"][i, j], 0.0, atol=1e-3)


def test_multilabel_and_cls_match_seg(scenes) -> None:
    seg = scenes["seg"]
    counts = np.stack([(seg == k + 1).sum(axis=(1, 2)) for k in range(K)], axis=1)  # [N, K]
    np.testing.assert_array_equal(scenes["multilabel"], (counts > 0).astype(np.float32))
    np.testing.assert_array_equal(scenes["cls"], counts.argmax(1))
    assert (counts[np.arange(len(seg)), scenes["cls"]] > 0).all()


def test_edges_are_instance_changes_between_4_neighbours(scenes) -> None:
    inst, seg = scenes["instance"], scenes["seg"]
    edges = scenes["edges"][:, 0]
    n, h, w = inst.shape
    want = np.zeros((n, h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w:
                    want[:, y, x] |= inst[:, y, x] != inst[:, yy, xx]
    np.testing.assert_array_equal(edges, want.astype(np.float32))
    # every change of the semantic label is an edge too
    dv = seg[:, 1:] != seg[:, :-1]
    assert edges[:, 1:][dv].all() and edges[:, :-1][dv].all()
    assert 0.0 < edges.mean() < 0.3


def _project(point: np.ndarray, h: int, w: int) -> tuple[int, int]:
    """(row, col) of the pixel containing the projection of a camera-frame 3-D point."""
    s = scene.TAN_HALF_FOV
    x, y, z = point
    return int((1 - y / -z / s) / 2 * h), int((x / -z / s + 1) / 2 * w)


def test_sphere_depth_decreases_toward_centre(scenes) -> None:
    """Spheres bulge toward the camera.

    ``depth`` is z-depth, so its minimum sits at the projection of the sphere's frontmost
    point ``C + R z``; the range (Euclidean distance, ``depth * |ray|``) is minimal on the
    ray through the centre ``C``.  Both must grow toward the silhouette.
    """
    p = scenes["params"]
    obj_depth = scenes["object_depth"]  # unoccluded per-object depth, inf outside the object
    h = w = 48
    ray_len = np.linalg.norm(render._camera_rays(h, w), axis=0)
    checked = 0
    for i, j in zip(*np.nonzero(p["present"] & (p["kind"] == 0))):
        d = obj_depth[i, j]
        m = np.isfinite(d)
        centre, radius = p["centre"][i, j], p["radius"][i, j]
        if m.sum() < 30 or m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any():
            continue  # small, or cut by the frame
        rows, cols = np.nonzero(m)
        for target, values in (
            (_project(centre, h, w), (d * ray_len)[m]),  # range, minimal toward C
            (_project(centre + np.array([0.0, 0.0, radius]), h, w), d[m]),  # z-depth
        ):
            r = np.hypot(rows - target[0], cols - target[1])
            rim = r >= np.percentile(r, 90)
            near = r <= 1.0
            assert near.any()
            assert values[near].max() < values[rim].min()
            assert np.corrcoef(r, values)[0, 1] > 0.8
            # the nearest pixel of the sphere lies at (within a pixel of) the target
            k = np.argmin(values)
            assert np.hypot(rows[k] - target[0], cols[k] - target[1]) <= 1.5
        checked += 1
    assert checked >= 5


def test_occlusion_nearest_surface_wins(scenes) -> None:
    obj_depth = scenes["object_depth"]  # [N, S, H, W]
    allz = np.concatenate([scenes["bg_depth"][:, None], obj_depth], axis=1)
    np.testing.assert_array_equal(scenes["instance"], allz.argmin(1))
    np.testing.assert_array_equal(scenes["depth"][:, 0], allz.min(1))
    overlap = np.isfinite(obj_depth).sum(1) >= 2
    assert overlap.sum() > 50  # the test data really contains overlapping objects
    vis = scenes["instance"][overlap].astype(np.int64)
    od = obj_depth.transpose(0, 2, 3, 1)[overlap]  # [M, S]
    vis_obj = vis > 0
    assert vis_obj.sum() > 0
    vis_d = od[vis_obj, vis[vis_obj] - 1]
    others = od[vis_obj].copy()
    others[np.arange(len(others)), vis[vis_obj] - 1] = np.inf
    assert (vis_d < others.min(1)).all()


def test_colour_does_not_encode_class(scenes) -> None:
    p = scenes["params"]
    col = p["color"][p["present"]]
    kind = p["kind"][p["present"]]
    means = np.stack([col[kind == k].mean(0) for k in range(K)])
    assert np.ptp(means, axis=0).max() < 0.25


# --------------------------------------------------------------------------- balance
def test_class_balance() -> None:
    d = generate_scenes(500, 32, seed=2024)
    freq = np.bincount(d["cls"], minlength=K) / 500
    assert (freq >= 0.10).all(), freq
    assert (d["multilabel"].mean(0) > 0.2).all()
