"""Reading one image file of your own data (``folder:PATH``) into a PIL image in ``"L"`` or ``"RGB"``.

Two things Pillow's ``convert`` gets wrong for us, done here instead:

* a file whose data is damaged or cut short fails only when its pixels are decoded (the header scan of
  :mod:`.custom` reads headers only), deep inside a training loop; it becomes a
  :class:`~stitchkit.errors.StitchkitError` that names the file and what is wrong with it;
* 16-bit grey images (PNG/TIFF, Pillow modes ``I;16*`` and ``I``) are *clipped* by ``convert("L")``
  (every value above 255 becomes white), so they are scaled instead: ``v / 65535`` of full scale,
  rounded to the nearest of the 256 levels every other image has.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import StitchkitError

#: Pillow modes of 16-bit grey images ("I" is how older Pillow versions open a 16-bit PNG)
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_FULL_SCALE = 65535

#: what Pillow raises for a damaged file: truncated data (OSError), broken headers and tables
#: (SyntaxError, ValueError, EOFError), images too large to decode safely
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def read_image(path: str, mode: str) -> Image.Image:
    """The image at ``path`` decoded and converted to ``mode`` (``"L"`` or ``"RGB"``)."""
    try:
        with Image.open(path) as image:
            image.load()  # decode now, so that damaged data fails here, naming the file
            if image.mode in SIXTEEN_BIT_MODES:
                image = eight_bit(image, path)
            return image.convert(mode)
    except StitchkitError:
        raise
    except _DECODE_ERRORS as exc:
        raise StitchkitError(
            f"cannot decode image {path}: {_reason(exc)}; re-save the file or remove it from the folder"
        ) from None


def eight_bit(image: Image.Image, path: str = "") -> Image.Image:
    """A 16-bit grey image as an 8-bit ``"L"`` image with the same brightness (``round(v · 255 / 65535)``)."""
    pixels = np.asarray(image, dtype=np.int64)
    if pixels.size and (pixels.min() < 0 or pixels.max() > _FULL_SCALE):
        raise StitchkitError(
            f"image {path} is a {image.mode}-mode image with values in [{pixels.min()}, {pixels.max()}], outside the "
            f"16-bit range 0–{_FULL_SCALE}; store 8-bit or 16-bit images"
        )
    return Image.fromarray(np.rint(pixels * (255 / _FULL_SCALE)).astype(np.uint8), mode="L")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if "truncated" in text.lower():
        return f"its data is cut short ({text})"
    return f"{type(exc).__name__}: {text}"
