"""Readers for the on-disk formats of the registered datasets.

Every function here takes a path and returns numpy arrays (images as ``N×H×W`` or ``N×H×W×C`` uint8,
labels as int64), so the datasets in :mod:`stitchkit.data.datasets` only ever index arrays.

We read the files ourselves instead of constructing torchvision's dataset classes, for three reasons:
torchvision recomputes the md5 of every CIFAR/SVHN file each time a dataset is built (seconds for the
real files, and it rejects any other file with the right format); its MNIST reader cannot read the
gzipped IDX files that Debian's ``dataset-fashion-mnist`` installs; and CIFAR-5M is not in torchvision.
The *layouts* (folder and file names) stay exactly torchvision's, and downloads still go through
torchvision (see :mod:`stitchkit.data.sources`).
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from ..errors import StitchkitError
from ..utils.io import atomic_path

# --------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 python pickles


def read_cifar_batches(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Read CIFAR python batches (``data`` N×3072 uint8, ``labels`` or ``fine_labels``) into
    ``N×32×32×3`` images and int64 labels. CIFAR-100's fine labels (100 classes) are used, as in
    torchvision."""
    images, labels = [], []
    for path in paths:
        with open(path, "rb") as f:
            try:
                entry = pickle.load(f, encoding="latin1")
            except Exception as exc:  # a truncated or foreign file
                raise StitchkitError(
                    f"cannot read CIFAR batch {str(path)!r}: {exc}; delete it and download again"
                ) from None
        data = np.asarray(entry["data"], dtype=np.uint8)
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    return np.ascontiguousarray(np.concatenate(images)), np.asarray(labels, dtype=np.int64)


def read_cifar_class_names(path: Path, key: str) -> list[str] | None:
    """Class names from ``batches.meta`` / ``meta``; None when the file is absent."""
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        return list(pickle.load(f, encoding="latin1")[key])


# --------------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST), raw or gzipped

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or ``.gz``.

    The header is two zero bytes, a type byte, a dimension count, then one big-endian uint32 per
    dimension; the data follow in big-endian order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise StitchkitError(f"{str(path)!r} is not an IDX file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    count = int(np.prod(dims))
    array = np.frombuffer(data, dtype=dtype, count=count, offset=4 + 4 * ndim)
    return array.reshape(dims).astype(dtype.newbyteorder("="), copy=False)


# --------------------------------------------------------------------------------------------------
# SVHN .mat


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN ``*_32x32.mat``: ``X`` is 32×32×3×N, ``y`` is N×1 with label 10 for the digit 0
    (mapped to 0, as torchvision does)."""
    import scipy.io  # deferred: scipy loads only for SVHN's .mat files

    mat = scipy.io.loadmat(str(path))
    images = np.ascontiguousarray(np.transpose(mat["X"], (3, 0, 1, 2)).astype(np.uint8, copy=False))
    labels = mat["y"].astype(np.int64).reshape(-1)
    labels[labels == 10] = 0
    return images, labels


# --------------------------------------------------------------------------------------------------
# Memory-mapped .npy members of .npz archives (CIFAR-5M)

_LOCAL_HEADER = struct.Struct("<4s5H3I2H")  # zip local file header, 30 bytes


def memmap_npz_member(
    npz_path: str | os.PathLike, member: str, cache_dir: str | os.PathLike | None = None
) -> np.memmap:
    """Memory-map array ``member`` (e.g. ``"X"``) of an ``.npz`` without reading it into RAM.

    ``np.savez`` stores each array as an ``.npy`` file inside a zip archive. When the member is
    *stored* (uncompressed), its bytes lie contiguously in the archive: we find the member's local
    header (``ZipInfo.header_offset``), skip the header's name and extra fields to reach the ``.npy``
    bytes, parse the ``.npy`` header with :mod:`numpy.lib.format`, and map the data in place.

    A compressed member (``np.savez_compressed``) cannot be mapped; it is extracted once into
    ``<npz stem>.<member>.npy`` beside the archive (or in ``cache_dir`` when that folder is not
    writable) and that file is mapped. The cache is refreshed when the archive is newer.
    """
    npz_path = Path(npz_path)
    name = member if member.endswith(".npy") else f"{member}.npy"
    with zipfile.ZipFile(npz_path) as archive:
        try:
            info = archive.getinfo(name)
        except KeyError:
            raise StitchkitError(
                f"{str(npz_path)!r} has no array {member!r}; it holds "
                f"{', '.join(n.removesuffix('.npy') for n in archive.namelist())}"
            ) from None
        if info.compress_type != zipfile.ZIP_STORED:
            return _memmap_extracted(archive, info, npz_path, name, cache_dir)
    with open(npz_path, "rb") as f:
        f.seek(info.header_offset)
        fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
        if fields[0] != b"PK\x03\x04":
            raise StitchkitError(f"{str(npz_path)!r} is not a valid npz archive (bad local header for {name})")
        name_len, extra_len = fields[-2], fields[-1]
        f.seek(info.header_offset + _LOCAL_HEADER.size + name_len + extra_len)
        shape, fortran_order, dtype = _read_npy_header(f, npz_path)
        offset = f.tell()
    if dtype.hasobject:  # a pickle of Python objects: mapping it would read raw pointers
        raise StitchkitError(
            f"{str(npz_path)!r} stores {member} as Python objects (a pickle), which are never "
            f"loaded; store a numeric array"
        )
    # copy-on-write: the file is never written, but the array is writable (torch.from_numpy warns on read-only arrays)
    return np.memmap(npz_path, dtype=dtype, mode="c", offset=offset, shape=shape, order="F" if fortran_order else "C")


def _read_npy_header(f, where) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = npy_format.read_magic(f)
    if version == (1, 0):
        return npy_format.read_array_header_1_0(f)
    if version == (2, 0):
        return npy_format.read_array_header_2_0(f)
    raise StitchkitError(f"unsupported .npy format version {version} in {str(where)!r}")


def _memmap_extracted(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, npz_path: Path, name: str, cache_dir
) -> np.memmap:
    cache_name = f"{npz_path.stem}.{name}"
    candidates = [npz_path.parent / cache_name]
    if cache_dir is not None:
        candidates.append(Path(cache_dir) / cache_name)
    for cache in candidates:
        if cache.is_file() and cache.stat().st_mtime >= npz_path.stat().st_mtime:
            return np.load(cache, mmap_mode="r")
    last_error: OSError | None = None
    for cache in candidates:
        try:
            with atomic_path(cache) as tmp, archive.open(info) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, length=16 << 20)
        except OSError as exc:
            last_error = exc
            continue
        return np.load(cache, mmap_mode="r")
    raise StitchkitError(
        f"{str(npz_path)!r} stores {name} compressed, so it must be extracted once to be memory-mapped, "
        f"but no cache file could be written ({', '.join(map(str, candidates))}): {last_error}"
    )


def memmap_npy(path: str | os.PathLike) -> np.memmap:
    """Memory-map a plain ``.npy`` file."""
    return np.load(Path(path), mmap_mode="r")


class MappedArray:
    """A memory-mapped array that pickles as the recipe to map it again.

    ``np.memmap`` pickles as a full in-memory copy of its data, so a dataset over CIFAR-5M sent to
    DataLoader workers started with ``spawn``/``forkserver`` (the default on macOS and Windows)
    would copy gigabytes. This wrapper holds a picklable ``opener`` (e.g.
    ``functools.partial(memmap_npz_member, path, "X")``), maps the file on first use, and drops the
    map when pickled. ``array`` is the ``np.memmap`` itself.
    """

    def __init__(self, opener: Callable[[], np.memmap]):
        self.opener = opener
        self._array: np.memmap | None = None

    @property
    def array(self) -> np.memmap:
        if self._array is None:
            self._array = self.opener()
        return self._array

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def ndim(self) -> int:
        return self.array.ndim

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index):
        return self.array[index]

    def __getstate__(self) -> dict:
        return {"opener": self.opener, "_array": None}
