"""Pictures: real PNGs from matplotlib (the plot extra), and a one-line hint without it."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from symback import Dataset, Network, Parameters
from symback.training import plots
from symback.training.dials import rank_dials

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
    assert width == 640 and 400 <= height <= 450 and colours > 5  # taller by the legend's row below the axes
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


@pytest.mark.parametrize("count", [2, 8, 16])
def test_the_legend_sits_below_the_axes_and_epochs_are_whole_numbers(matplotlib, count):
    """The sweep's legend covered its curves (it sat inside the axes); epochs had ticks at 2.5."""
    curves = {f"η={i} · relu · momentum": np.linspace(1.0, 0.1 + 0.01 * i, 5) for i in range(count)}
    figure = plots._curves_figure(curves, title="t", ylabel="loss", log=True)
    figure.canvas.draw()
    (axes,) = figure.axes
    (legend,) = figure.legends
    box, frame = legend.get_window_extent(), axes.get_window_extent()
    assert box.y1 <= frame.y0 and not box.overlaps(frame)  # wholly under the plotting area
    assert 0 <= box.x0 and box.x1 <= figure.bbox.x1 + 1  # and inside the picture
    ticks = [t for t in axes.get_xticks() if axes.get_xlim()[0] <= t <= axes.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert len(legend.get_texts()) == count


def test_train_plots_writes_the_three_pictures(matplotlib, tmp_path, capsys):
    from symback.cli import main

    from .conftest import EXAMPLES

    folder = tmp_path / "plots"
    assert main(["train", str(EXAMPLES / "seed002.toml"), "--epochs", "5", "--quiet", "--plots", str(folder)]) == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["dials.png", "gradient-norms.png", "loss.png"]
    for name in names:
        width, _, colours = _png_size_and_colours((folder / name).read_bytes())
        assert width == 640 and colours > 3
    assert "plots       " in capsys.readouterr().out


def test_train_plots_without_matplotlib_is_one_line_before_training(monkeypatch, tmp_path, capsys):
    from symback.cli import main

    from .conftest import EXAMPLES

    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    save = tmp_path / "model.npz"
    status = main(["train", str(EXAMPLES / "seed002.toml"), "--quiet", "--save", str(save), "--plots", str(tmp_path / "p")])
    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and "pip install 'symback[plot]'" in captured.err and "--plots" in captured.err
    assert not save.exists() and not (tmp_path / "p").exists()  # refused before any training


def test_train_plots_refuses_a_file_as_the_folder(matplotlib, tmp_path, capsys):
    from symback.cli import main

    from .conftest import EXAMPLES

    taken = tmp_path / "taken"
    taken.write_text("x", encoding="utf-8")
    assert main(["train", str(EXAMPLES / "seed002.toml"), "--quiet", "--plots", str(taken)]) == 2
    assert "is a file" in capsys.readouterr().err and taken.read_text(encoding="utf-8") == "x"
