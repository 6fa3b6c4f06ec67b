"""Single-parameter derive/report for the layer kinds of issue 14: a residual network's derivation and
report (value = the compiled gradient, PDF within two pages); conv1d, conv2d and recurrent networks'
derivations (symback.render.kinds): value = compiled gradient = central differences, the flipped-kernel
correlation, backpropagation through time, every format, and a wrong name in one line."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symback
from symback import Network, derive
from symback.cli import main
from symback.compile.compiler import compile_network
from symback.errors import SpecError
from symback.render.kinds import evaluate_indexed
from symback.render.latex import latex
from symback.render.report import build_report, render, write_report
from symback.symbolic.chain import delta_recursion, grid_tuple
from symback.symbolic.network import NodeRef

from .test_report import _pdf_log, grid_networks
from .tools import require_program

_SPECS = {
    "conv1d": '[network]\ninputs = [1, 6]\ncost = "squared_error"\n\n[[layer]]\nkind = "conv1d"\nfilters = 2\n'
              'kernel = 3\npadding = "valid"\nactivation = "sigmoid"\n\n[[layer]]\nsize = 1\nactivation = "sigmoid"\n',
    "conv2d": '[network]\ninputs = [1, 4, 4]\ncost = "squared_error"\n\n[[layer]]\nkind = "conv2d"\nfilters = 2\n'
              'kernel = 2\npadding = "same"\nactivation = "relu"\n\n[[layer]]\nsize = 1\nactivation = "sigmoid"\n',
    "recurrent": '[network]\ninputs = [3, 2]\ncost = "squared_error"\n\n[[layer]]\nkind = "recurrent"\nhidden = 2\n'
                 'activation = "tanh"\n\n[[layer]]\nsize = 1\nactivation = "sigmoid"\nreads = "last"\n',
}


def _residual():
    """2-2-2-2-1 sigmoid with a(3) = σ(z(3)) + a(1): the gradient reaches layers 1 and 2 by two routes."""
    net = Network([2, 2, 2, 2, 1], "sigmoid", "squared_error", skips={3: 1})
    params = symback.Parameters.initialize(net, seed=5)
    data = symback.Dataset.from_arrays([[0.3, -0.7], [1.1, 0.4], [-0.2, 0.9]], [0.5, 0.1, 0.8])
    return net, params, data


@pytest.mark.parametrize("ref", [NodeRef("w", 1, 1, 0), NodeRef("b", 1, 0), NodeRef("w", 3, 0, 1),
                                 NodeRef("b", 3, 1), NodeRef("w", 4, 0, 1)])
def test_residual_derivation_value_is_the_compiled_gradient(ref):
    net, params, data = _residual()
    gradient = compile_network(net).gradient(params, data, respect_frozen=False)
    arrays, index = (gradient.weights, (ref.j, ref.k)) if ref.kind == "w" else (gradient.biases, (ref.j,))
    expected = float(arrays[ref.layer - 1][index])
    assert expected != 0.0
    assert derive(net, ref).value(params, data) == pytest.approx(expected, rel=1e-10)


def _small_residual():
    """2-2-2-1 sigmoid with a(2) = σ(z(2)) + x: a report's network."""
    net = Network([2, 2, 2, 1], "sigmoid", "squared_error", skips={2: 0})
    params = symback.Parameters.initialize(net, seed=5)
    data = symback.Dataset.from_arrays([[0.3, -0.7], [1.1, 0.4], [-0.2, 0.9]], [0.5, 0.1, 0.8])
    return net, params, data


@pytest.mark.parametrize("ref", [NodeRef("w", 1, 0, 0), NodeRef("b", 2, 0), NodeRef("w", 2, 1, 0)])
def test_residual_report_pdf_is_at_most_two_pages_without_overfull_boxes(ref):
    """Once 3 pages: the residual's ∂a/∂z = ∂(x + σ(z))/∂z was not recognised as σ′(z) and was derived
    rule by rule under a softmax heading, and written as e^−z/(1 + e^−z)² in every product."""
    require_program("pdflatex")
    net, params, data = _small_residual()
    pages, overfull = _pdf_log(build_report(derive(net, ref), params, data))
    assert overfull == []
    assert pages <= 2


def test_residual_activation_factor_is_named_and_written_in_f_of_z():
    """∂a(l)/∂z(l) of a residual layer is σ′(z) = σ(z)(1 − σ(z)) — not a(1 − a), a carries the skip term."""
    net, params, data = _small_residual()
    text = derive(net, NodeRef("w", 2, 1, 0)).text(params, data)
    assert "∂a(L-1)_1/∂z(L-1)_1   = σ′(z(L-1)_1) = σ(z(L-1)_1) (1 − σ(z(L-1)_1))" in text
    assert "a(L-1)_1 (1 − a(L-1)_1)" not in text
    assert "e^" not in text
    gradient = compile_network(net).gradient(params, data, respect_frozen=False)
    assert derive(net, NodeRef("w", 2, 1, 0)).value(params, data) == pytest.approx(
        float(gradient.weights[1][1, 0]), rel=1e-10)


@pytest.mark.parametrize("suffix", ["md", "html"])
def test_residual_report_writes_markdown_and_html(tmp_path, suffix):
    net, params, data = _small_residual()
    out = tmp_path / f"r.{suffix}"
    write_report(derive(net, NodeRef("b", 1, 0)), str(out), params=params, data=data)
    written = out.read_text(encoding="utf-8")
    # Layer 1 is below the skip edge a(2) = σ(z(2)) + x: two paths, the residual's ∂a/∂z named σ′, no e^−z form.
    assert ("\\sigma'" if suffix == "md" else "<mi>σ</mi><mo>′</mo>") in written
    assert "another neuron" not in written and "\\frac{e^{- z^{(" not in written


def _grid_case(label):
    network, names = grid_networks()[label]
    params = symback.Parameters.initialize(network, seed=7)
    rng = np.random.default_rng(11)
    data = symback.Dataset.from_arrays(rng.normal(size=(3, network.sizes[0])), rng.uniform(0.1, 0.9, size=(3, 1)))
    return network, names, params, data


def _central_difference(network, params, data, target, h=1e-6):
    compiled = compile_network(network)
    stored = (params.weights if target.block.stored == "w" else params.biases)[target.layer - 1]
    costs = []
    for step in (h, -h):
        moved = params.copy()
        array = (moved.weights if target.block.stored == "w" else moved.biases)[target.layer - 1]
        array[target.stored_index] = stored[target.stored_index] + step
        costs.append(compiled.cost(moved, data))
    return (costs[0] - costs[1]) / (2 * h)


@pytest.mark.parametrize("label, name", [(label, name) for label, (_, names) in grid_networks().items()
                                         for name in names])
def test_grid_derivation_value_is_the_compiled_gradient_and_central_differences(label, name):
    """The derived gradient expression, evaluated entry by entry, = the compiled gradient = central differences."""
    network, _, params, data = _grid_case(label)
    derivation = derive(network, name)
    target = derivation.target
    gradient = compile_network(network).gradient(params, data, respect_frozen=False)
    compiled = float((gradient.weights if target.block.stored == "w" else gradient.biases)[target.layer - 1][
        target.stored_index])
    assert compiled != 0.0
    value = derivation.value(params, data)
    assert value == pytest.approx(compiled, rel=1e-10)
    assert value == pytest.approx(_central_difference(network, params, data, target), rel=1e-6)


def test_report_value_is_the_derivations_value():
    network, names, params, data = _grid_case("conv1d")
    report = build_report(derive(network, names[0]), params, data)
    derivation = derive(network, names[0])
    assert report.examples == tuple(f"{v:.3g}".replace("-", "−") for v in derivation.examples(params, data))
    reduce = np.mean if derivation.reduction == "mean" else np.sum
    assert reduce(derivation.examples(params, data)) == pytest.approx(derivation.value(params, data), rel=1e-12)
    assert f"= {derivation.value(params, data):.3g}$" in render(report, "md")  # the LaTeX of the total


def test_conv_delta_below_is_the_flipped_kernel_correlation_of_the_derived_one():
    """The shown δ(L−2) (a sum over kernel offsets m) = the engine's (a sum over output positions), entry by entry."""
    network, _, params, data = _grid_case("conv1d")
    derivation = derive(network, "w(1)_0_0_2")
    backward = derivation.backward
    derived = delta_recursion(backward, 1)
    shown = derivation._display(derived)
    assert derived != shown and any(str(i) == "m" for s in shown.atoms(sp.Sum) for i, _, _ in s.limits)
    arrays = derivation._arrays(params, data)
    arrays[backward.model.zs[1]] = arrays[backward.model.zs[1]]
    (k, k1) = grid_tuple(backward.own_index[1])
    for position in range(network.layers[0].grid[1]):
        at = {k: 0, k1: position}
        np.testing.assert_allclose(evaluate_indexed(shown, at, arrays, len(data)),
                                   evaluate_indexed(derived, at, arrays, len(data)), rtol=1e-12, atol=1e-15)
    text = derivation.text()
    assert "δ(L-2)_f,i = σ′(z(L-2)_f,i) Σ_j Σ_m δ(L-1)_j,i − m·w(L-1)_j,f,m" in text


def test_recurrent_shows_backpropagation_through_time_and_the_one_step_jacobian():
    network, _, params, data = _grid_case("recurrent")
    derivation = derive(network, "W(1)_0_1")
    text = derivation.text(params, data)
    assert "∂C/∂W(L-1)_j,q = Σ_t a(L-1)_t − 1,q·δ(L-1)_t,j" in text
    assert "W(L-1)_o,q·δ(L-1)_t + 1,o" in text  # the next step's error through W
    assert "J_s = ∂a(L-1)_s,j/∂a(L-1)_s − 1,k = tanh′(z(L-1)_s,j) W(L-1)_j,k" in text
    assert "∂a(L-1)_2/∂a(L-1)_t = Π_{s=t + 1}^{2} J_s" in text
    norms = derivation.step_norms(params, data)
    assert norms.shape == (3,) and np.all(norms > 0)


def test_the_product_of_one_step_jacobians_carries_the_last_steps_error_back():
    """∂C/∂h_0 = (J_2 J_1)ᵀ ∂C/∂h_2 with J_s = diag(tanh′(z_s)) W, the derived one-step Jacobian, against the
    compiled backward pass (the readout reads only the last state, so the error reaches h_0 only through W)."""
    network, _, params, data = _grid_case("recurrent")
    compiled = compile_network(network)
    forward = compiled.forward(params, data.X)
    delta = compiled.deltas(params, data, forward)[0].reshape(len(data), 3, 2)
    z = forward.zs[0].reshape(len(data), 3, 2)
    prime = 1 - np.tanh(z) ** 2
    nabla = delta / prime  # ∂C/∂h_t = δ_t / f′(z_t)
    W = params.weights[0][:, :2]
    for example in range(len(data)):
        jacobians = [np.diag(prime[example, s]) @ W for s in (1, 2)]
        product = jacobians[1] @ jacobians[0]
        np.testing.assert_allclose(product.T @ nabla[example, 2], nabla[example, 0], rtol=1e-10)


@pytest.mark.parametrize("suffix", ["md", "html", "tex"])
def test_grid_reports_write_every_format(tmp_path, suffix):
    network, names, params, data = _grid_case("conv2d")
    out = write_report(derive(network, names[0]), str(tmp_path / f"r.{suffix}"), params=params, data=data)
    written = out.read_text(encoding="utf-8")
    assert "Passed down" in written and "flipped kernel" in written


@pytest.mark.parametrize(("label", "shapes"), [("conv2d", "1×4×4 – 2×3×3 – 1"), ("recurrent", "3×2 – 3×2 – 1")])
def test_a_grid_report_names_its_network_by_the_layers_shapes(tmp_path, label, shapes):
    """Not by the flattened widths (a conv2d network is not "16-18-1")."""
    network, names, _, _ = _grid_case(label)
    out = write_report(derive(network, names[0]), str(tmp_path / "r.md"))
    assert f"for the {shapes} network" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("label", ["conv1d", "conv2d", "recurrent"])
def test_the_forward_formulas_read_in_the_gradient_lines_letters_not_the_engines_dummies(label):
    """j₁, m₀, d₁ are the engine's names; the report writes f, j, m (a convolution), t, j (recurrent), and a
    readout of a grid sums over f, i[, r] as the δ lines do.  Only names change: the same arrays are read."""
    import re

    network, names, _, _ = _grid_case(label)
    derivation = derive(network, names[0])
    equations = derivation.forward_equations()
    assert len(equations) == 2 * network.depth
    forwards = [derivation.backward.forward[l][0] for l in range(1, network.depth + 1)]
    for equation, z in zip(equations[::2], forwards, strict=True):
        labels = {str(i.label) for i in equation.atoms(sp.Idx)}
        assert not any(re.fullmatch(r"[a-z]_?\d+", x) for x in labels), labels
        assert {b.label for b in equation.rhs.atoms(sp.IndexedBase)} == {b.label for b in z.atoms(sp.IndexedBase)} \
            or label == "recurrent"  # a recurrent layer's w is shown as its blocks W and U
    if label == "conv2d":
        assert "w^{(L-1)}_{f,c,m,n} x_{c,j + m,k + n}" in latex(equations[0])


def _spec(tmp_path, kind):
    spec = tmp_path / "spec.toml"
    spec.write_text(_SPECS[kind], encoding="utf-8")
    return spec


@pytest.mark.parametrize("kind", sorted(_SPECS))
def test_cli_derives_and_reports_a_grid_kind(tmp_path, capsys, kind):
    spec = _spec(tmp_path, kind)
    name = {"conv1d": "w(1)_0_0_2", "conv2d": "w(1)_1_0_1_1", "recurrent": "U(1)_0_1"}[kind]
    assert main(["derive", str(spec), "--wrt", name]) == 0
    assert "gradient:" in capsys.readouterr().out
    out = tmp_path / "r.md"
    assert main(["report", str(spec), "--wrt", name, "-o", str(out)]) == 0
    assert "The gradient" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", sorted(_SPECS))
@pytest.mark.parametrize("wrt", ["w(1)_0_0", "a(1)_0", "w(9)_0_0_0", "V(1)_0_0"])
def test_a_name_that_is_not_an_entry_is_one_line_no_file(tmp_path, capsys, kind, wrt):
    spec = _spec(tmp_path, kind)
    assert main(["derive", str(spec), "--wrt", wrt]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    out = tmp_path / "r.md"
    assert main(["report", str(spec), "--wrt", wrt, "-o", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not out.exists()
    with pytest.raises(SpecError):
        derive(symback.load_spec(str(spec)).network, wrt)
