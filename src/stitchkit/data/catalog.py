"""What the dataset registry holds, without loading anything: names, class counts, shapes, files.

Each dataset is declared once, at its loader in :mod:`stitchkit.data.sets`
(``@declare("dataset", NAME, **metadata)``, :data:`METADATA`); this module reads those declarations
without importing them (:func:`stitchkit.declarations.catalogue`), so neither torch nor the loaders
load and ``stitchkit datasets`` and every command's checks stay fast. :mod:`stitchkit.data.registry`
pairs each name with its declared loader and transforms. Names, layouts, splits and class counts
follow the original code (seed spec section 3), plus the offline sets ``digits``,
``natural_patches`` and ``noise``; your own data (``folder:PATH``, ``npz:PATH``) is described by
:mod:`stitchkit.data.custom`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..declarations import Declaration, DeclarationError, catalogue
from ..errors import UnknownNameError, unknown_name
from .base import DatasetInfo, is_custom, parse_size, size_suffix


@dataclass(frozen=True)
class CatalogEntry:
    """A registered dataset's metadata: its :class:`DatasetInfo`, how to get its files (quoted in the
    missing-data message; ``{root}`` is the data root), and how it is sampled."""

    info: DatasetInfo
    how_to_get: str
    #: generated sets are built directly at any requested shape
    generated: bool = False
    #: the set's length is chosen by ``size`` (patches and noise)
    takes_size: bool = False
    #: samples per training epoch when one epoch over the whole set is impractical (CIFAR-5M)
    epoch_size: int | None = None


#: marks the metadata a dataset must declare
REQUIRED = object()

#: a dataset declaration's metadata (``@declare("dataset", NAME, **metadata)`` in :mod:`stitchkit.data.sets`)
#: → its default (:data:`REQUIRED`: none); the transforms are named by their function in
#: :mod:`stitchkit.data.transforms`, ``mean_std`` is the ``(mean, std)`` the items are normalised with
METADATA: dict[str, Any] = {
    "num_classes": REQUIRED,
    "shape": REQUIRED,
    "description": REQUIRED,
    "expected_files": REQUIRED,
    "how_to_get": REQUIRED,
    "has_test_split": True,
    "aliases": (),
    "generated": False,
    "takes_size": False,
    "epoch_size": None,
    "train_transform": "no_ops",
    "eval_transform": "no_ops",
    "mean_std": None,
    "order": None,
}


def _entry(decl: Declaration) -> CatalogEntry:
    unknown = sorted(set(decl.meta) - set(METADATA))
    missing = [key for key, default in METADATA.items() if default is REQUIRED and key not in decl.meta]
    if unknown or missing:
        problem = f"has no metadata {unknown[0]!r}" if unknown else f"needs {missing[0]!r}"
        raise DeclarationError(f"dataset {decl.name!r} ({decl.source}) {problem}; its metadata: {', '.join(METADATA)}")
    meta = {**METADATA, **decl.meta}
    info = DatasetInfo(
        name=decl.name,
        num_classes=meta["num_classes"],
        shape=tuple(meta["shape"]),
        has_test_split=meta["has_test_split"],
        description=meta["description"],
        expected_files=meta["expected_files"],
        aliases=tuple(meta["aliases"]),
    )
    return CatalogEntry(
        info,
        meta["how_to_get"],
        generated=meta["generated"],
        takes_size=meta["takes_size"],
        epoch_size=meta["epoch_size"],
    )


# id of a declaration -> (the declaration, its entry): one entry per declaration, so that a name's
# info is the same object on every call
_ENTRIES: dict[int, tuple[Declaration, CatalogEntry]] = {}


def entries() -> dict[str, CatalogEntry]:
    """Every registered dataset by canonical name, in the catalogue's order: the declarations of
    :mod:`stitchkit.data.sets` (read without importing them) and those made at run time."""
    out = {}
    for name, decl in catalogue("dataset").items():
        known = _ENTRIES.get(id(decl))
        if known is None or known[0] is not decl:
            known = _ENTRIES[id(decl)] = (decl, _entry(decl))
        out[name] = known[1]
    return out


def aliases() -> dict[str, str]:
    """Every alias of a registered dataset → its canonical name."""
    return {alias: entry.info.name for entry in entries().values() for alias in entry.info.aliases}


#: how the registry's errors and listings name your own data
OWN_DATA = (
    "your own data: folder:PATH (PATH/train/<class>/<image>, PATH/test/<class>/<image>) "
    "or npz:PATH (x_train, y_train, x_test, y_test)"
)
#: how the registry's errors and listings name a registered set at another input size
SIZED = "any of them at another input size as NAME@CxHxW (e.g. fashion@3x224x224)"


def registered(name: str) -> tuple[str, tuple[int, int, int] | None]:
    """The registered name behind ``name`` and the item shape its ``@CxHxW`` suffix asks for (None:
    the set's own shape). ``@HxW`` keeps the set's channels. An unknown name raises the error that
    lists the known ones; a malformed size says what is accepted."""
    text = str(name).strip()
    base, at, tail = text.partition("@")
    key = base.strip().lower()
    known = entries()
    key = aliases().get(key, key)
    if key not in known:
        listing = unknown_name("dataset", base.strip() if at else text, list(known))
        raise UnknownNameError(f"{listing}; {SIZED}; or {OWN_DATA}")
    if not at:
        return key, None
    channels, size = parse_size(text, tail)
    native = known[key].info.shape
    shape = (channels or native[0], *size)
    return key, (None if shape == native else shape)


def canonical_name(name: str) -> str:
    """The registered name behind ``name`` (an alias or another capitalisation), with ``@CxHxW`` when
    it asks for a shape other than the set's own; an unknown name raises the error that lists the
    known ones."""
    key, shape = registered(name)
    return key if shape is None else key + size_suffix(shape[0], shape[1:])


def list_datasets() -> list[str]:
    """Canonical names of the registered datasets (aliases and your own data not included)."""
    return list(entries())


def dataset_info(name: str) -> DatasetInfo:
    """Metadata of a dataset by name or alias (``NAME@CxHxW``: at that item shape), or of your own
    data (``folder:PATH``, ``npz:PATH``, read and checked on first use); an unknown name lists the
    known ones."""
    if is_custom(name):
        from . import custom  # deferred: numpy and Pillow load only for your own data

        return custom.describe(name).info
    key, shape = registered(name)
    info = entries()[key].info
    if shape is None:
        return info
    return replace(
        info,
        name=canonical_name(name),
        shape=shape,
        aliases=(),
        description=f"{info.description} Delivered at {'×'.join(map(str, shape))} (bilinear resize with antialiasing; "
        "channels by luma or repetition).",
    )
