"""Figures that show themselves: :class:`InlineFigure`, a matplotlib figure that IPython (Jupyter,
VS Code, Colab) displays as a PNG image by itself; :func:`.display.inline` makes the figures that
``plot()`` draws into one (this module imports matplotlib, so it is loaded only once a figure exists).

:mod:`.plot` builds figures without pyplot, so no backend is chosen and no global figure list grows.
Such a bare :class:`~matplotlib.figure.Figure` shows in a notebook only once matplotlib's inline
backend has registered its display hook (``%matplotlib inline``, or a pyplot import under it); a fresh
kernel prints ``<Figure size 940x350 with 4 Axes>`` instead. An :class:`InlineFigure` carries its own
``_repr_png_``, which IPython's display machinery calls whatever the backend; everywhere else it is
the same figure (``savefig``, ``axes``, pickling). Where a display hook for figures is registered
(``%matplotlib inline``), IPython uses that hook instead, so a figure never shows twice.
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure

#: the resolution of the notebook image (matplotlib's default figure dpi)
INLINE_DPI = 100


class InlineFigure(Figure):
    """A :class:`~matplotlib.figure.Figure` that IPython shows as a PNG image (``_repr_png_``)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=INLINE_DPI, bbox_inches="tight")
        return buffer.getvalue()


__all__ = ["INLINE_DPI", "InlineFigure"]
