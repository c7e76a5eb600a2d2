"""File writing for `prepare` converters: every file goes to a temporary name in its final folder and is
renamed (a killed run never leaves a half-written file); `run_jobs` converts images in parallel processes."""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from benchmark.errors import DataError

JPEG_QUALITY = 75  # PIL's default, which MaskFormer's script uses when it re-saves the images
_UMASK = os.umask(0)
os.umask(_UMASK)


def output_path(root: Path, *parts: str) -> Path:
    """`root/parts...`, refusing any part that could leave `root` (`..`, absolute, separators)."""
    for part in parts:
        if part in ("", ".", "..") or "/" in part or "\\" in part or ".." in Path(part).parts:
            raise DataError(f"refusing to write '{part}' under {root}: not a plain file or folder name")
    return root.joinpath(*parts)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Run `write(tmp)` on a temporary file in `path`'s folder, then rename it to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_jpeg(path: Path, image: np.ndarray) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="JPEG", quality=JPEG_QUALITY))


def save_tif16(path: Path, labels: np.ndarray) -> None:
    import tifffile

    atomic_write(path, lambda tmp: tifffile.imwrite(tmp, labels.astype(np.uint16)))


def save_png8(path: Path, labels: np.ndarray) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(labels.astype(np.uint8)).save(tmp, format="PNG"))


def copy_file(src: Path, dst: Path) -> None:
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def run_jobs(convert: Callable, jobs: Sequence, workers: int, desc: str) -> list:
    """`convert(job)` for every job with a tqdm bar, in `workers` processes when > 1."""
    if workers <= 1:
        return [convert(job) for job in tqdm(jobs, desc=desc, unit="img")]
    with ProcessPoolExecutor(workers) as pool:
        return list(tqdm(pool.map(convert, jobs, chunksize=16), total=len(jobs), desc=desc, unit="img"))


def report(results: Iterable[bool], dst: Path) -> None:
    results = list(results)
    written = sum(results)
    print(f"wrote {written} image(s), kept {len(results) - written} already prepared, under {dst}")
