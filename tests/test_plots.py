"""Pictures: real PNGs from matplotlib (the plot extra), and a one-line hint without it."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from symback import Dataset, Network, Parameters, plots
from symback.dials import rank_dials

from .tools import distinct_colours, png_pixels, require_module


def _png_size_and_colours(png: bytes) -> tuple[int, int, int]:
    width, height, _, _ = png_pixels(png)
    return width, height, distinct_colours(png)


@pytest.fixture
def matplotlib():
    return require_module("matplotlib")


def test_loss_curves_and_gradient_norms_are_real_pictures(matplotlib):
    png = plots.loss_curves({"lr 0.1": [1.0, 0.5, 0.2, 0.1], "lr 1.0": [1.0, 0.9, 0.95, 0.7]})
    width, height, colours = _png_size_and_colours(png)
    assert (width, height) == (640, 400) and colours > 5
    png = plots.gradient_norm_curves({"L-2": [1e-3, 1e-4], "L-1": [1e-2, 1e-2], "L": [0.1, 0.05]})
    assert _png_size_and_colours(png)[2] > 5


def test_dials_chart_and_weight_maps(matplotlib, tmp_path):
    net = Network([4, 3, 2], "sigmoid", "squared_error")
    params = Parameters.initialize(net, seed=2)
    data = Dataset.from_arrays(np.random.default_rng(0).random((6, 4)), np.eye(2)[[0, 1, 0, 1, 1, 0]])
    dials = rank_dials(net, params, data, top=5)
    assert _png_size_and_colours(plots.dials_chart(dials))[2] > 3
    png = plots.weight_maps(np.random.default_rng(1).normal(size=(6, 625)))
    path = plots.save_png(png, tmp_path / "maps.png")
    assert path.read_bytes() == png
    assert plots.data_uri(png).startswith("data:image/png;base64,iVBOR")


def test_without_matplotlib_the_error_names_the_extra(monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    assert not plots.have_matplotlib()
    with pytest.raises(plots.MissingExtraError, match=r"pip install 'symback\[plot\]'"):
        plots.loss_curves({"a": [1.0]})


def test_rank_dials_orders_by_partial_and_gives_direction():
    net = Network([2, 2, 1], "tanh", "ssr", frozen=["b(L)"])
    params = Parameters.initialize(net, seed=5)
    data = Dataset.from_arrays([[0.5, -1.0], [1.0, 2.0]], [1.0, -1.0])
    dials = rank_dials(net, params, data, learning_rate=0.5, top=20)
    assert len(dials) == net.n_parameters
    partials = [abs(d.partial) for d in dials]
    assert partials == sorted(partials, reverse=True)
    from symback import derive

    for dial in dials:
        assert dial.partial == pytest.approx(derive(net, dial.ref).value(params, data), rel=1e-10, abs=1e-14)
        assert dial.turn == pytest.approx(-0.5 * dial.partial)
        assert dial.direction == ("up" if dial.partial < 0 else "down")
    assert [d.frozen for d in dials].count(True) == 1
