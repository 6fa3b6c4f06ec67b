"""Pictures: loss curves, per-layer gradient norms, the dials ranking, first-layer weight maps.

matplotlib is an optional extra (``pip install 'symback[plot]'``).  Figures are
made with the object API on the Agg canvas — no pyplot state, no display — and
come back as PNG bytes, ready to save or embed in a self-contained HTML report.
Without matplotlib every function raises :class:`MissingExtraError`, a one-line
message naming the extra.

>>> png = loss_curves({"sgd": [1.0, 0.5, 0.25]})
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SymbackError
from ..files import write_atomic

__all__ = [
    "MissingExtraError",
    "data_uri",
    "dials_chart",
    "gradient_norm_curves",
    "have_matplotlib",
    "loss_curves",
    "save_png",
    "training_figures",
    "weight_maps",
]


class MissingExtraError(SymbackError):
    """An optional dependency is not installed."""


PLOT_HINT = "pictures need matplotlib: pip install 'symback[plot]'"


def have_matplotlib() -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    # `import` raises ImportError when sys.modules["matplotlib"] is None, which is how the tests hide
    # matplotlib; this check keeps the answer right should anything bind the name to None another way.
    return matplotlib is not None


def _figure(width: float = 6.4, height: float = 4.0) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtraError(PLOT_HINT) from None
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _curves_figure(curves: Mapping[str, Sequence[float]], *, title: str, ylabel: str, log: bool | None,
                   floor: float | None = None) -> Any:
    """Epochs along x (whole-number ticks), one line per label, and a legend *below* the axes (it
    never covers a curve, however many runs there are).  ``log`` None: log scale, always."""
    try:
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise MissingExtraError(PLOT_HINT) from None
    columns = min(len(curves), 3) or 1
    legend_rows = math.ceil(len(curves) / columns) if len(curves) > 1 else 0
    figure = _figure(6.4, 4.0 + 0.25 * legend_rows)
    axes = figure.add_subplot()
    for label, values in curves.items():
        values = np.asarray(values, dtype=float)
        if floor is not None:
            values = np.maximum(values, floor)
        axes.plot(np.arange(1, len(values) + 1), values, label=label, linewidth=1.6)
    positive = all(np.all(np.asarray(v, dtype=float) > 0) for v in curves.values() if len(v))
    if log is None or (log and positive):
        axes.set_yscale("log")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if legend_rows:
        figure.legend(loc="outside lower center", ncols=columns, fontsize="small", frameon=False)
    return figure


def loss_curves(
    curves: Mapping[str, Sequence[float]], *, title: str = "loss per epoch", ylabel: str = "loss", log: bool = True
) -> bytes:
    """One line per run (label -> loss per epoch), side by side on shared axes."""
    return _png(_curves_figure(curves, title=title, ylabel=ylabel, log=log))


def gradient_norm_curves(norms: Mapping[str, Sequence[float]], *, title: str = "gradient norm per layer") -> bytes:
    """Per-layer ‖∂C/∂W(l)‖ per epoch on a log scale: vanishing gradients fall, exploding ones climb."""
    return _png(_curves_figure(norms, title=title, ylabel="‖∂C/∂W‖", log=None, floor=1e-300))


def dials_chart(dials: Sequence[Any], *, title: str = "dials to turn (largest |∂C/∂p| first)") -> bytes:
    """Horizontal bars of the turn ``-η ∂C/∂p`` of each dial: right is 'turn up', left 'turn down'."""
    figure = _figure(6.4, max(2.5, 0.35 * len(dials) + 1))
    axes = figure.add_subplot()
    names = [dial.name for dial in dials][::-1]
    turns = [dial.turn for dial in dials][::-1]
    colours = ["#2a7ab9" if t > 0 else "#c0392b" for t in turns]
    axes.barh(names, turns, color=colours)
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel("turn = −η ∂C/∂p   (right: up, left: down)")
    axes.set_title(title)
    axes.tick_params(axis="y", labelsize="small")
    return _png(figure)


def weight_maps(maps: np.ndarray, *, image_shape: tuple[int, int] = (25, 25), title: str = "first-layer weights") -> bytes:
    """Each row of ``maps`` (e.g. W(1) of shape (20, 625)) shown as an image, diverging colours around 0."""
    maps = np.asarray(maps, dtype=float)
    count = maps.shape[0]
    columns = min(5, count)
    rows = math.ceil(count / columns)
    figure = _figure(1.6 * columns + 0.6, 1.6 * rows + 0.6)
    limit = float(np.max(np.abs(maps))) or 1.0
    image = None
    for index in range(count):
        axes = figure.add_subplot(rows, columns, index + 1)
        image = axes.imshow(maps[index].reshape(image_shape), cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(f"j = {index}", fontsize="x-small")
    if image is not None:
        figure.colorbar(image, ax=figure.axes, shrink=0.6)
    figure.suptitle(title)
    return _png(figure)


def training_figures(history: Any, layers: Sequence[str], dials: Sequence[Any]) -> dict[str, tuple[str, bytes]]:
    """The pictures of one training run, file name -> (caption, PNG): ``loss.png`` (the training
    and test loss per epoch), ``gradient-norms.png`` (one curve per layer, ``layers`` naming them)
    and ``dials.png`` (``dials``, e.g. :func:`symback.training.dials.rank_dials` at the trained parameters).
    ``history`` is a :class:`symback.training.train.History`."""
    losses = {"training": history.loss, "test": history.test_loss}
    norms = {name: [row[i] for row in history.gradient_norms] for i, name in enumerate(layers)}
    return {
        "loss.png": ("loss per epoch", loss_curves({k: v for k, v in losses.items() if len(v)})),
        "gradient-norms.png": ("gradient norm per layer", gradient_norm_curves(norms)),
        "dials.png": ("the dials to turn next", dials_chart(dials)),
    }


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for embedding in a self-contained HTML file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def save_png(png: bytes, path: str | os.PathLike[str]) -> Path:
    """Write ``png`` atomically (a temporary file, then rename): never a half-written picture."""
    return write_atomic(path, png)
