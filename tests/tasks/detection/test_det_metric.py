"""DetectionMetrics against pycocotools (test-only dependency) and across DDP ranks."""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist

from mtl_cli.tasks.detection.metric import DetectionMetrics

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402 (after importorskip)
from pycocotools.cocoeval import COCOeval  # noqa: E402


def _coco_reference(preds, targets, num_classes):
    """(mAP, mAP@.5, mAP@.75) by pycocotools; image i has id i + 1, class c is category c + 1."""
    images = [{"id": i + 1} for i in range(len(targets))]
    anns = []
    for i, t in enumerate(targets):
        for box, label in zip(t["boxes"].double().tolist(), t["labels"].tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": label + 1,
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    dets = []
    for i, p in enumerate(preds):
        for box, score, label in zip(p["boxes"].double().tolist(), p["scores"].double().tolist(), p["labels"].tolist()):
            dets.append(
                {
                    "image_id": i + 1,
                    "category_id": label + 1,
                    "score": score,
                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                }
            )
    if not anns:
        return (math.nan,) * 3
    if not dets:
        return (0.0,) * 3
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": c + 1} for c in range(num_classes)]}
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return tuple(float(v) for v in ev.stats[:3])


def _ours(preds, targets, **kwargs):
    m = DetectionMetrics(**kwargs)
    m.update(preds, targets)
    r = m.compute()
    return r["map"], r["map_50"], r["map_75"]


def _assert_agree(preds, targets, num_classes):
    got = _ours(preds, targets)
    exp = _coco_reference(preds, targets, num_classes)
    for g, e in zip(got, exp):
        if math.isnan(e):
            assert math.isnan(g)
        else:
            assert abs(g - e) < 1e-4, (got, exp)
    return got


def _img(boxes, labels, scores=None):
    out = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
    }
    if scores is not None:
        out["scores"] = torch.tensor(scores, dtype=torch.float32)
    return out


def test_hand_made_perfect_and_empty():
    gt = [_img([[0, 0, 10, 10], [20, 20, 40, 30]], [0, 1]), _img([], [])]
    perfect = [_img([[0, 0, 10, 10], [20, 20, 40, 30]], [0, 1], [0.9, 0.8]), _img([], [], [])]
    assert _assert_agree(perfect, gt, 2) == pytest.approx((1.0, 1.0, 1.0))
    none = [_img([], [], []), _img([], [], [])]
    assert _ours(none, gt) == (0.0, 0.0, 0.0)
    # no GT anywhere: nan (pycocotools: -1)
    assert all(math.isnan(v) for v in _ours(perfect[1:], gt[1:]))


def test_hand_made_thresholds_fp_and_unknown_class():
    gt = [_img([[0, 0, 10, 10], [0, 0, 10, 20]], [0, 0])]
    # IoU exactly 0.5 with the second GT; a high-scoring FP; a class without GT (ignored)
    preds = [
        _img([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 10, 20]], [0, 0, 0, 3], [0.9, 0.8, 0.95, 0.99])
    ]
    got = _assert_agree(preds, gt, 4)
    assert got[1] < 1.0


def test_equal_iou_takes_the_last_gt_like_pycocotools():
    # det 1 overlaps both GT boxes with IoU 0.5; pycocotools gives it the later one (B),
    # which leaves A (IoU 0.9) for det 2: both are true positives at IoU 0.5
    gt = [_img([[0, 0, 10, 20], [0, 0, 20, 10]], [0, 0])]
    preds = [_img([[0, 0, 10, 10], [0, 0, 10, 18]], [0, 0], [0.9, 0.8])]
    got = _assert_agree(preds, gt, 1)
    assert got[1] == pytest.approx(1.0)


def _random_case(rng: np.random.Generator, crowded: bool):
    num_classes = 3
    preds, targets = [], []
    for _ in range(int(rng.integers(1, 7))):
        n_gt = int(rng.integers(20, 40)) if crowded else int(rng.integers(0, 6))
        centre = rng.uniform(10, 50, size=(n_gt, 2))
        if crowded:
            centre = rng.uniform(25, 35, size=(n_gt, 2))
        size = rng.uniform(4, 20, size=(n_gt, 2))
        gt = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        gl = rng.integers(0, num_classes, size=n_gt)
        keep = rng.random(n_gt) < 0.8  # missed GT
        jitter = rng.normal(0, 2.0, size=(n_gt, 4))
        pb = (gt + jitter)[keep]
        pl = np.where(rng.random(n_gt) < 0.9, gl, rng.integers(0, num_classes, size=n_gt))[keep]
        n_fp = int(rng.integers(0, 6))
        fc = rng.uniform(0, 60, size=(n_fp, 2))
        fs = rng.uniform(3, 15, size=(n_fp, 2))
        pb = np.concatenate([pb, np.concatenate([fc - fs / 2, fc + fs / 2], axis=1)])
        pl = np.concatenate([pl, rng.integers(0, num_classes, size=n_fp)])
        scores = rng.random(len(pb))
        if rng.random() < 0.5:
            scores = np.round(scores, 1)  # many equal scores
        if rng.random() < 0.2:
            pb, pl, scores = pb[:0], pl[:0], scores[:0]  # image without predictions
        targets.append(_img(gt.astype(np.float32), gl))
        preds.append(_img(pb.astype(np.float32), pl, scores.astype(np.float32)))
    return preds, targets, num_classes


@pytest.mark.parametrize("seed", range(20))
def test_random_cases_agree_with_pycocotools(seed):
    rng = np.random.default_rng(seed)
    preds, targets, k = _random_case(rng, crowded=seed % 4 == 3)
    _assert_agree(preds, targets, k)


def test_max_dets_cut_per_image_and_class():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0, 50, size=(30, 2))
    gt = np.concatenate([gt, gt + 8], axis=1).astype(np.float32)
    pb = np.repeat(gt, 5, axis=0) + rng.normal(0, 1, size=(150, 4)).astype(np.float32)
    targets = [_img(gt, [0] * 30)]
    preds = [_img(pb, [0] * 150, rng.random(150).astype(np.float32))]
    _assert_agree(preds, targets, 1)


def test_batches_and_valid():
    rng = np.random.default_rng(3)
    preds, targets, _ = _random_case(rng, crowded=False)
    one = _ours(preds, targets)
    m = DetectionMetrics()
    m.update(preds[:1], targets[:1])
    m.update(preds[1:] + preds[:1], targets[1:] + targets[:1], valid=torch.tensor([True] * (len(preds) - 1) + [False]))
    r = m.compute()
    assert (r["map"], r["map_50"], r["map_75"]) == one
    assert DetectionMetrics.higher_is_better == {"map": True, "map_50": True, "map_75": True}
    m.reset()
    assert all(math.isnan(v) for v in m.compute().values())


def _ddp_case():
    rng = np.random.default_rng(11)
    p1, t1, _ = _random_case(rng, crowded=False)
    p2, t2, _ = _random_case(rng, crowded=False)
    return p1 + p2, t1 + t2


def _ddp_worker(rank: int, world: int, init_file: str, queue) -> None:
    try:
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
        preds, targets = _ddp_case()
        m = DetectionMetrics()
        sl = slice(0, 1) if rank == 0 else slice(1, None)  # uneven split
        m.update(preds[sl], targets[sl])
        m.sync()
        m.sync()  # no-op
        result = m.compute()
        m.update(preds[:1], targets[:1])
        try:
            m.sync()
            result["resync_raises"] = False
        except RuntimeError:
            result["resync_raises"] = True
        queue.put((rank, result))
        dist.destroy_process_group()
    except BaseException as exc:  # noqa: BLE001  # pragma: no cover - reported to the parent
        queue.put((rank, repr(exc)))


def test_ddp_two_ranks_equal_single_process():
    import multiprocessing as mp

    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        procs = [ctx.Process(target=_ddp_worker, args=(r, 2, init_file, queue)) for r in range(2)]
        try:
            for p in procs:
                p.start()
            got = dict(queue.get(timeout=60) for _ in procs)
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.terminate()
    preds, targets = _ddp_case()
    assert len(preds) > 2
    m = DetectionMetrics()
    m.update(preds, targets)
    expected = m.compute()
    for r in (0, 1):
        assert isinstance(got[r], dict), got[r]
        assert got[r].pop("resync_raises") is True
        assert got[r] == expected
