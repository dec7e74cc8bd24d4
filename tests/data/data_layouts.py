"""Writers of tiny datasets in the exact on-disk layouts (file names, formats, dtypes) of the real releases.

Used by the dataset tests and by ``benchmarks/bench_data.py`` (which writes them at the
real resolutions). Values are random but obey each release's conventions.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def _unit_normals(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    n = rng.normal(size=(h, w, 3))
    n[..., 2] = np.abs(n[..., 2]) + 0.1
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def _invalid_block(h: int, w: int) -> tuple[slice, slice]:
    return slice(0, max(1, h // 4)), slice(0, max(1, w // 4))


def write_nyuv2(root: Path, n_train: int = 4, n_val: int = 3, size: tuple[int, int] = (24, 32), seed: int = 0) -> Path:
    """``<root>/{train,val}/{image,label,depth,normal}/<i>.npy``, float64 like the MTAN release."""
    rng = np.random.default_rng(seed)
    h, w = size
    block = _invalid_block(h, w)
    for split, n in (("train", n_train), ("val", n_val)):
        for folder in ("image", "label", "depth", "normal"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            label = rng.integers(0, 13, size=(h, w)).astype(np.float64)
            label[-2:, :] = -1.0  # unlabelled pixels
            depth = rng.uniform(0.5, 10.0, size=(h, w, 1))
            normal = _unit_normals(rng, h, w)
            depth[block] = 0.0
            normal[block] = 0.0
            np.save(root / split / "image" / f"{i}.npy", rng.random((h, w, 3)))
            np.save(root / split / "label" / f"{i}.npy", label)
            np.save(root / split / "depth" / f"{i}.npy", depth)
            np.save(root / split / "normal" / f"{i}.npy", normal)
    return root


def write_cityscapes(
    root: Path, n_train: int = 4, n_val: int = 3, size: tuple[int, int] = (16, 32), seed: int = 0
) -> Path:
    """``<root>/{train,val}/{image,label_7,label_19,depth}/<i>.npy``; depth is inverse depth, 0 = invalid."""
    rng = np.random.default_rng(seed)
    h, w = size
    block = _invalid_block(h, w)
    for split, n in (("train", n_train), ("val", n_val)):
        for folder in ("image", "label_7", "label_19", "depth"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            depth = rng.uniform(0.01, 0.3, size=(h, w, 1))
            depth[block] = 0.0
            for classes in (7, 19):
                label = rng.integers(0, classes, size=(h, w)).astype(np.float64)
                label[0, :] = -1.0
                np.save(root / split / f"label_{classes}" / f"{i}.npy", label)
            np.save(root / split / "image" / f"{i}.npy", rng.random((h, w, 3)))
            np.save(root / split / "depth" / f"{i}.npy", depth)
    return root


def write_celeba(root: Path, n: int = 10, size: tuple[int, int] = (218, 178), seed: int = 0) -> Path:
    """torchvision's ``<root>/celeba/`` layout: aligned JPEGs, attribute table, split list.

    Split ids cycle 0, 0, 0, 1, 2 (train, train, train, valid, test).
    """
    rng = np.random.default_rng(seed)
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    values = rng.choice([-1, 1], size=(n, len(CELEBA_ATTRIBUTES)))
    for name in names:
        pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "img_align_celeba" / name, quality=90)
    rows = [name + "".join(f" {v:2d}" for v in row) for name, row in zip(names, values)]
    header = " ".join(CELEBA_ATTRIBUTES) + " "
    (folder / "list_attr_celeba.txt").write_text("\n".join([str(n), header, *rows]) + "\n")
    splits = [(0, 0, 0, 1, 2)[i % 5] for i in range(n)]
    (folder / "list_eval_partition.txt").write_text("".join(f"{a} {s}\n" for a, s in zip(names, splits)))
    return root


def _idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in the IDX format of the MNIST release."""
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> Path:
    """``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` with 28x28 uint8 digits."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        images[:, 6:22, 10:18] = rng.integers(128, 256, size=(n, 16, 8))
        _idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, size=n))
    return root


def write_folder(
    root: Path,
    n_train: int = 6,
    n_val: int = 4,
    size: tuple[int, int] = (20, 24),
    seg_classes: int = 4,
    ml_labels: int = 3,
    cls_classes: int = 3,
    unlabelled: dict[str, set[int]] | None = None,
    seed: int = 0,
) -> Path:
    """The ``folder`` layout with all six task kinds; ``unlabelled[task]`` lists images left without a label."""
    rng = np.random.default_rng(seed)
    unlabelled = unlabelled or {}
    h, w = size
    for split, n in (("train", n_train), ("val", n_val)):
        base = root / split
        for sub in ("images", "seg", "depth", "normals", "edges"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        cls_rows, ml_rows = ["image,label"], ["image," + ",".join(f"l{j}" for j in range(ml_labels))]
        for i in range(n):
            name = f"img_{i:03d}"
            skip = {task for task, idx in unlabelled.items() if i in idx}
            Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(base / "images" / f"{name}.png")
            if "seg" not in skip:
                seg = rng.integers(0, seg_classes, size=(h, w)).astype(np.uint8)
                seg[0, :] = 255
                Image.fromarray(seg).save(base / "seg" / f"{name}.png")
            if "depth" not in skip:
                depth = rng.uniform(0.5, 5.0, size=(h, w)).astype(np.float32)
                depth[_invalid_block(h, w)] = 0.0
                np.save(base / "depth" / f"{name}.npy", depth)
            if "normals" not in skip:
                np.save(base / "normals" / f"{name}.npy", _unit_normals(rng, h, w).astype(np.float32))
            if "edges" not in skip:
                edges = (rng.random((h, w)) < 0.1).astype(np.uint8) * 255
                Image.fromarray(edges).save(base / "edges" / f"{name}.png")
            if "cls" not in skip:
                cls_rows.append(f"{name}.png,{rng.integers(0, cls_classes)}")
            if "multilabel" not in skip:
                ml_rows.append(f"{name}.png," + ",".join(str(v) for v in rng.integers(0, 2, size=ml_labels)))
        (base / "cls.csv").write_text("\n".join(cls_rows) + "\n")
        (base / "multilabel.csv").write_text("\n".join(ml_rows) + "\n")
    return root
