"""Reading data files and checking them, with one-line errors that name the file.

Every dataset reads through these helpers, so a missing folder, an unreadable file, a
wrong shape or dtype, or an out-of-range label is always reported the same way: which
file, what was found, what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mtl_cli.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class DataFileError(UserError):
    """A data file (or folder) that cannot be used; the message names it and what was expected.

    A DataLoader worker re-raises an exception in the main process as
    ``type(exc)(text)``, where ``text`` holds the worker's whole traceback. The
    constructor recovers the original one-line message from that text, so a bad file met
    by a worker is reported exactly like one met in the main process.
    """

    def __init__(self, message: str) -> None:
        if message.startswith("Caught ") and "Traceback" in message:
            last = message.rstrip().splitlines()[-1]
            message = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)


def require_root(root: str | None, name: str, layout: str) -> Path:
    """``data.root`` as an existing folder, or a ``UserError`` saying what it should hold."""
    if root is None:
        raise UserError(f"data={name} needs data.root=<folder>; the folder should hold {layout}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise UserError(f"data.root={root} is not a folder; for data={name} it should hold {layout}")
    return path


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a ``DataFileError`` saying what it was needed for."""
    if not path.is_dir():
        raise DataFileError(f"missing folder {path} ({what})")
    return path


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a ``DataFileError`` saying what it was needed for."""
    if not path.is_file():
        raise DataFileError(f"missing file {path} ({what})")
    return path


def read_text(path: Path, what: str) -> str:
    """The text of the UTF-8 file ``path`` (see ``require_file``); bytes that are not UTF-8 are a ``DataFileError``."""
    data = require_file(path, what).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataFileError(
            f"{path} ({what}) is not UTF-8 text: byte {exc.start} (line {line}) cannot be decoded; save it as UTF-8"
        ) from None


_INDEX = re.compile(r"^(0|[1-9][0-9]*)\.npy$")


def contiguous_npy_count(folder: Path) -> int:
    """Number of files ``0.npy .. N-1.npy`` in ``folder``; error on gaps or other ``.npy`` names."""
    names = [p.name for p in folder.iterdir() if p.suffix == ".npy"]
    indices = []
    for name in names:
        match = _INDEX.match(name)
        if not match:
            raise DataFileError(f"unexpected file {folder / name}: files must be named <index>.npy, 0.npy upwards")
        indices.append(int(match.group(1)))
    if not indices:
        raise DataFileError(f"no .npy files in {folder}; expected 0.npy, 1.npy, ...")
    indices.sort()
    count = len(indices)
    if indices[-1] != count - 1:
        missing = next(i for i, j in enumerate(indices) if i != j)
        raise DataFileError(
            f"non-contiguous indices in {folder}: {missing}.npy is missing but {indices[-1]}.npy exists; "
            f"expected 0.npy..{indices[-1]}.npy with no gaps"
        )
    return count


def read_npy(path: Path, header_only: bool = False) -> np.ndarray:
    """Load a ``.npy`` array (no pickles; memory-mapped when ``header_only``) or raise ``DataFileError``."""
    try:
        return np.load(path, mmap_mode="r" if header_only else None, allow_pickle=False)
    except FileNotFoundError:
        raise DataFileError(f"missing file {path}") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataFileError(f"cannot read {path} ({_reason(exc)}); expected a NumPy .npy array") from None


def read_image(path: Path, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode an image file to RGB (``draft_size`` (W, H) lets JPEG decode at reduced scale)."""
    try:
        with Image.open(path) as img:
            if draft_size is not None:
                img.draft("RGB", draft_size)
            return img.convert("RGB")
    except FileNotFoundError:
        raise DataFileError(f"missing image {path}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataFileError(f"cannot read image {path} ({_reason(exc)}); expected a readable PNG/JPEG image") from None


def read_label_image(path: Path) -> np.ndarray:
    """A single-channel label image (8- or 16-bit PNG) as an integer array [H, W]."""
    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "P", "I", "I;16", "1"):
                raise DataFileError(
                    f"{path} is a {img.mode} image; expected a single-channel (L, P or 16-bit) label PNG"
                )
            return np.asarray(img).astype(np.int64)
    except FileNotFoundError:
        raise DataFileError(f"missing file {path}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataFileError(f"cannot read label image {path} ({_reason(exc)}); expected a PNG") from None


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def check_array(
    array: np.ndarray, path: Path, shapes: Sequence[tuple[int | None, ...]], dtype_kinds: str, what: str
) -> None:
    """Check ``array`` has one of ``shapes`` (``None`` = any size) and a dtype kind in ``dtype_kinds``.

    ``dtype_kinds`` uses NumPy's letters: ``f`` float, ``i`` signed int, ``u`` unsigned int.
    """
    if array.dtype.kind not in dtype_kinds:
        names = {"f": "float", "i": "int", "u": "uint"}
        wanted = "/".join(names[k] for k in dtype_kinds)
        raise DataFileError(f"{path} has dtype {array.dtype}; expected {wanted} ({what})")
    if not any(_shape_matches(array.shape, shape) for shape in shapes):
        wanted = " or ".join(_shape_text(s) for s in shapes)
        raise DataFileError(f"{path} has shape {tuple(array.shape)}; expected {wanted} ({what})")


def _shape_matches(actual: tuple[int, ...], pattern: tuple[int | None, ...]) -> bool:
    return len(actual) == len(pattern) and all(p is None or a == p for a, p in zip(actual, pattern))


def _shape_text(pattern: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if p is None else str(p) for p in pattern) + ")"


def check_range(array: np.ndarray, path: Path, low: float, high: float, what: str, tol: float = 1e-3) -> None:
    """Every value finite and within ``[low - tol, high + tol]``."""
    if array.size == 0:
        return
    if not np.isfinite(array).all():
        raise DataFileError(f"{path} contains NaN or inf; expected {what}")
    lo, hi = float(array.min()), float(array.max())
    if lo < low - tol or hi > high + tol:
        raise DataFileError(f"{path} has values in [{lo:g}, {hi:g}]; expected {what} in [{low:g}, {high:g}]")


def check_class_labels(array: np.ndarray, path: Path, num_classes: int, ignore_index: int | None) -> None:
    """Integral values in ``[0, num_classes)``, or equal to ``ignore_index``."""
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise DataFileError(f"{path} holds non-integer labels; expected class indices")
    bad = (array < 0) | (array >= num_classes)
    if ignore_index is not None:
        bad &= array != ignore_index
    if bad.any():
        allowed = f"0..{num_classes - 1}" + ("" if ignore_index is None else f" or {ignore_index} (ignore)")
        value = array[bad].flat[0]
        raise DataFileError(f"{path} has label value {value:g} outside the classes; expected {allowed}")


def sample_indices(count: int, check_files: int) -> Iterable[int]:
    """Which of ``count`` samples the up-front scan reads: the first ``check_files`` and the last."""
    picked = list(range(min(count, check_files)))
    if check_files > 0 and count - 1 not in picked:
        picked.append(count - 1)
    return picked
