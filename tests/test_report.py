"""Reports: golden strings, real pdflatex, real headless Chromium, escaping, atomic writes, the wheel."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import sympy as sp

import symback
from symback import Network, derive
from symback.cli import main
from symback.compile.compiler import compile_network
from symback.errors import SymbackError
from symback.render.latex import latex
from symback.render.report import build_report, render, template_dir, write_report

from .tools import chromium_screenshot, dark_pixels, png_pixels, require_program

ROOT = Path(__file__).resolve().parent.parent
DESCENT = {"learning_rate": 0.1, "tolerance": 1e-3, "max_steps": 100}


@pytest.fixture
def seed002_report(seed002):
    d = derive(seed002.network, "b3")
    return build_report(d, seed002.parameters, seed002.data, descent=DESCENT, source="seed002.toml")


# -- golden strings ------------------------------------------------------------------------------------------


def test_seed002_numbers_golden(seed002_report):
    md = render(seed002_report, "md")
    assert (
        r"\frac{\partial \mathrm{SSR}}{\partial b_{3}} = \left(-5.21\right) + \left(-5.22\right) + \left(-5.23\right) = -15.7"
        in md
    )
    # Gradient descent subtracts the step: new b3 = 0 − (−1.57) = 1.57 (seed 002 prints −1.57 by adding it).
    assert "| 1 | 0 | −15.7 | −1.57 | 1.57 |" in md
    assert "| 2 | 1.57 | −6.26 | −0.626 | 2.19 |" in md  # seed 002's second slope, −6.26
    assert seed002_report.descent.rows[0].new == "1.57"
    assert seed002_report.descent.converged
    # Digits are added until consecutive rows differ: no iteration looks stuck.
    rows = seed002_report.descent.rows
    assert all(a.new != b.new for a, b in zip(rows, rows[1:]))
    assert len(rows[-1].new.replace("−", "").replace(".", "")) > 3


def test_seed002_factors_golden(seed002_report):
    tex = render(seed002_report, "tex")
    assert (
        r"\frac{\partial \mathrm{SSR}}{\partial b_{3}} = \frac{\partial \mathrm{SSR}}{\partial \mathrm{predicted}} "
        r"\cdot \frac{\partial \mathrm{predicted}}{\partial z^{(L)}} \cdot \frac{\partial z^{(L)}}{\partial b_{3}}"
    ) in tex
    # SymPy's form, then seed 002's own: −2(observed − predicted), the cost's difference in its order.
    assert (r"so, and as the seeds write it, $\frac{\partial \mathrm{SSR}}{\partial \mathrm{predicted}} = "
            r"- 2 \mathrm{observed} + 2 \mathrm{predicted} = - 2 \left(\mathrm{observed} - \mathrm{predicted}\right)$.") in tex
    # The cost with its Σ over the examples.
    assert r"From $\mathrm{SSR} = \sum_{i} \left(\mathrm{observed}_{i} - \mathrm{predicted}_{i}\right)^{2}$" in tex
    assert r"\textbf{chain rule} (with $u = \mathrm{observed} - \mathrm{predicted}$)" in tex


def test_3blue1brown_chain_golden():
    report = build_report(derive(Network([1, 1, 1], "sigmoid", "squared_error"), "w(L)"))
    tex = render(report, "tex")
    assert (
        r"\frac{\partial C}{\partial w^{(L)}} = \frac{\partial C}{\partial a^{(L)}} \cdot "
        r"\frac{\partial a^{(L)}}{\partial z^{(L)}} \cdot \frac{\partial z^{(L)}}{\partial w^{(L)}}"
    ) in tex
    # σ′ derived once in a generic z by the rule trace, then written in σ's own value a(1 − a) ...
    assert (r"\sigma'\left(z\right) &= \frac{e^{- z}}{\left(1 + e^{- z}\right)^{2}} \\" "\n"
            r"&= a \left(1 - a\right)") in tex
    # ... and the factor is σ′ at this layer's z, in this layer's a.
    assert (r"\frac{\partial a^{(L)}}{\partial z^{(L)}} = \sigma'\left(z^{(L)}\right) = a^{(L)} \left(1 - a^{(L)}\right)"
            in tex)
    assert r"\frac{\partial z^{(L)}}{\partial w^{(L)}} = a^{(L-1)}" in tex
    # Assembled as 3Blue1Brown writes it, and in δ form.
    assert (r"\frac{\partial C}{\partial w^{(L)}} &= a^{(L-1)} \sigma'\left(z^{(L)}\right) 2 \left(a^{(L)} - y\right)"
            in tex)
    assert r"\frac{\partial C}{\partial w^{(L)}} &= a^{(L-1)} \delta^{(L)}" in tex
    assert r"\delta^{(L)} = \sigma'\left(z^{(L)}\right) 2 \left(a^{(L)} - y\right)" in tex


def test_every_factor_trace_ends_at_sympy_diff(seed002):
    """The first step line is the whole rule trace: its result must be the factor SymPy derives."""
    import sympy as sp

    derivation = derive(seed002.network, "w1")
    report = build_report(derivation)
    # Each local derivative once: the cost, each layer function, one weighted input (5 factors, 4 derivations).
    assert [r.heading for r in report.derivatives_used] == [
        "The cost", "The identity layer", "The weighted input", "The softplus layer"]
    assert len(report.results) == 5
    for shown in report.derivatives_used:
        traced = shown.steps[0].equation.expr
        assert sp.simplify(traced.rhs - sp.diff(traced.lhs.expr, traced.lhs.variables[0])) == 0
        assert sp.simplify(traced.rhs - shown.result.expr.rhs) == 0


# -- real tools -----------------------------------------------------------------------------------------------


def test_tex_report_compiles_with_pdflatex(tmp_path, seed002):
    require_program("pdflatex")
    for name, obj, options in [
        ("b3.pdf", derive(seed002.network, "b3"), {"params": seed002.parameters, "data": seed002.data, "descent": DESCENT}),
        ("network.pdf", seed002.network, {"params": seed002.parameters, "data": seed002.data}),
        ("w1.pdf", derive(seed002.network, "w1"), {"params": seed002.parameters, "data": seed002.data}),
    ]:
        path = write_report(obj, tmp_path / name, **options)
        assert path.read_bytes().startswith(b"%PDF-")


def test_html_report_renders_in_headless_chromium(tmp_path, seed002):
    page = write_report(derive(seed002.network, "w1"), tmp_path / "w1.html", params=seed002.parameters,
                        data=seed002.data)
    html = page.read_text(encoding="utf-8")
    assert "<math" in html and "http://" not in html.replace("http://www.w3.org/1998/Math/MathML", "")
    assert "<script" not in html and "https://" not in html
    png = chromium_screenshot(page, tmp_path)
    width, height, _, _ = png_pixels(png)
    assert (width, height) == (1200, 1600)
    dark = dark_pixels(png)
    assert dark > 500, f"screenshot looks blank ({dark} dark pixels sampled)"


# -- escaping -----------------------------------------------------------------------------------------------

EVIL_TEX = r"w_{evil}\input{/etc/passwd}"
EVIL_HTML = "<script>alert(1)</script>"


def test_labels_cannot_inject(tmp_path):
    # User node names must be identifiers (the core validates them); labels that do reach the
    # templates are activation names given with a formula and the spec file's name.
    for evil in (EVIL_TEX, EVIL_HTML):
        net = Network([1, 1], {"formula": "z/(1+exp(-z))", "name": evil}, "squared_error")
        report = build_report(derive(net, "w(L)"), source=evil + ".toml")
        tex, html, md = render(report, "tex"), render(report, "html"), render(report, "md")
        assert "\\input{" not in tex and "<script>" not in html and "<script>" not in md
        assert "&lt;script&gt;" in html or r"\textbackslash{}input" in tex


def test_injected_labels_still_compile(tmp_path):
    require_program("pdflatex")
    net = Network([1, 1], {"formula": "z", "name": EVIL_TEX + " $ & % # ^ ~ _"}, "squared_error")
    assert write_report(derive(net, "b(L)"), tmp_path / "evil.pdf", source=EVIL_TEX).stat().st_size > 1000


def test_user_names_are_validated_by_the_core():
    with pytest.raises(symback.SpecError):
        Network([1, 1], "sigmoid", "squared_error", names={"w(L)": EVIL_TEX})


# -- files and errors --------------------------------------------------------------------------------------


def test_format_from_suffix_and_atomic_write(tmp_path, seed002, monkeypatch):
    d = derive(seed002.network, "b3")
    for suffix in ("tex", "html", "md"):
        text = write_report(d, tmp_path / f"r.{suffix}").read_text(encoding="utf-8")
        assert "b" in text
    with pytest.raises(symback.SpecError, match="docx"):
        write_report(d, tmp_path / "r.docx")

    def broken(tex):
        raise SymbackError("pdflatex failed: ! simulated")

    monkeypatch.setattr("symback.render.report.compile_pdf", broken)
    (tmp_path / "old.pdf").write_bytes(b"previous")
    with pytest.raises(SymbackError):
        write_report(d, tmp_path / "old.pdf")
    assert (tmp_path / "old.pdf").read_bytes() == b"previous"
    assert not list(tmp_path.glob("*.part"))


def test_missing_pdflatex_is_named(tmp_path, seed002, monkeypatch):
    monkeypatch.setattr("symback.render.report.shutil.which", lambda name: None)
    with pytest.raises(SymbackError, match="pdflatex not found"):
        write_report(derive(seed002.network, "b3"), tmp_path / "r.pdf")
    assert not (tmp_path / "r.pdf").exists()


def test_cli_report(tmp_path, capsys):
    out = tmp_path / "b3.md"
    spec = str(ROOT / "examples" / "seed002.toml")
    assert main(["report", spec, "--wrt", "b3", "-o", str(out), "--descent", "--learning-rate", "0.1"]) == 0
    assert "−1.57" in out.read_text(encoding="utf-8")
    assert main(["report", spec, "--network", "-o", str(tmp_path / "net.html")]) == 0
    assert main(["report", spec, "--wrt", "nope", "-o", str(tmp_path / "x.md")]) == 2
    assert "unknown name 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x.md").exists()


def test_jupyter_reprs(seed002):
    d = derive(seed002.network, "b3")
    assert d._repr_latex_() == (
        r"$$\begin{gathered}\frac{\partial \mathrm{SSR}}{\partial b_{3}} = - 2 \left(\mathrm{observed} - "
        r"\mathrm{predicted}\right) \\ \frac{\partial \mathrm{SSR}}{\partial b_{3}} = \delta^{(L)} \\ "
        r"\delta^{(L)} = - 2 \left(\mathrm{observed} - \mathrm{predicted}\right)\end{gathered}$$"
    )
    # One naming: b3 throughout, never the index form's b^{(L)}_j beside it.
    assert "<mi>j</mi>" not in d._repr_html_() and d._repr_html_().count("<msub><mi>b</mi><mrow><mn>3</mn>") >= 2
    assert d._repr_html_().startswith('<div class="symback"><math display="block">')


@pytest.mark.parametrize(("network", "target"), [
    (Network([1, 1, 1, 1], "sigmoid", "squared_error", names={"cost": "C0"}), "w(L-1)"),
    (Network([2, 2, 2], "sigmoid", "binary_cross_entropy"), "w(L-1)_0_1"),
    (Network([2, 3, 2], ["relu", "softmax"], "categorical_cross_entropy"), "b(L-1)_2"),
])
def test_jupyter_and_derive_text_show_the_same_forms_in_one_naming(network, target):
    """Issue 12: a Jupyter Derivation mixed ∂SSR/∂b^{(L)}_j with ∂SSR/∂b_3. Each line Jupyter shows
    (LaTeX and MathML alike) is a line of `symback derive`'s text, in the same form and names."""
    from symback.render.notation import text

    d = derive(network, target)
    lines = d.presentation.summary()
    assert len(lines) >= 3  # the product in chain order, the δ form, at least one δ
    printed = d.text()
    for line in lines:
        assert text(line) in printed, text(line)
    assert d._repr_latex_().count(r" \\ ") == len(lines) - 1
    assert d._repr_html_().count("<math") == len(lines)
    # The output δ that cancels is shown cancelled, in both.
    if d.presentation.cancellations:
        final = d.presentation.cancellations[0]
        assert text(sp.Eq(final.delta, final.steps[-1], evaluate=False)) in printed


# -- whole networks -------------------------------------------------------------------------------------------


def test_network_report_index_and_matrix_forms_agree(seed002):
    report = build_report(seed002.network, seed002.parameters, symback.Dataset.from_arrays([0, 0.5, 1], [0, 1, 0]))
    assert [layer.layer for layer in report.layers] == ["L", "L-1"]
    assert report.check and all(float(row.difference) < 1e-9 for row in report.check)


@pytest.mark.parametrize(
    ("activations", "cost"),
    [("sigmoid", "squared_error"), (["tanh", "relu", "softmax"], "categorical_cross_entropy")],
)
def test_network_report_evaluates_the_index_form_without_writing_out_its_sums(monkeypatch, activations, cost):
    # Sum.doit() wrote out (and tried to simplify) one term per path: over 120 s on 784-4-4-10 (issue 11).
    import numpy as np
    import sympy as sp

    def refuse(self, **hints):
        raise AssertionError("the index form's sums were written out symbolically")

    net = Network([40, 5, 4, 3], activations, cost)
    rng = np.random.default_rng(0)
    data = symback.Dataset.from_arrays(rng.normal(size=(6, 40)), np.eye(3)[[0, 1, 2, 2, 1, 0]])
    params = symback.Parameters.initialize(net, seed=2)
    monkeypatch.setattr(sp.Sum, "doit", refuse)
    report = build_report(net, params, data)
    assert len(report.check) == 9
    gradient = compile_network(net).gradient(params, data)
    largest = max(float(np.max(np.abs(w))) for w in gradient.weights)
    assert all(float(row.difference) <= 1e-12 * largest for row in report.check)


def test_index_form_value_matches_the_written_out_sum():
    # The oracle: the index form's sums written out term by term (fine on a network this small).
    import numpy as np
    import sympy as sp

    from symback.render.report import _index_form_value
    from symback.symbolic.network import NodeRef

    net = Network([2, 3, 2], ["tanh", "softmax"], "categorical_cross_entropy")
    params = symback.Parameters.initialize(net, seed=4)
    data = symback.Dataset.from_arrays([[0.2, -0.5], [0.9, 0.1]], [[1, 0], [0, 1]])
    d = derive(net, NodeRef("w", 1, 2, 1), form="indexed")
    expr = d.indexed_product.xreplace(dict(zip(d.indexed_target.indices, (2, 1)))).doit()
    forward = compile_network(net).forward(params, data.X)
    from symback.symbolic.model import IndexedModel

    im = IndexedModel(net)
    total = 0.0
    for i in range(len(data)):
        values = {}
        for entry in expr.atoms(sp.Indexed):
            index = tuple(int(v) for v in entry.indices)
            base = entry.base
            if base == im.weights[1] or base == im.weights[2]:
                values[entry] = params.weights[1 if base == im.weights[2] else 0][index]
            elif base == im.activations[2]:
                values[entry] = forward.activations[2][i, index[0]]
            elif base == im.activations[1]:
                values[entry] = forward.activations[1][i, index[0]]
            elif base == im.zs[1]:
                values[entry] = forward.zs[0][i, index[0]]
            elif base == im.activations[0]:
                values[entry] = data.X[i, index[0]]
            elif base == im.targets:
                values[entry] = data.Y[i, index[0]]
        total += float(expr.xreplace(values))
    if d.reduction == "mean":
        total /= len(data)
    assert _index_form_value(d, params, data) == pytest.approx(total, rel=1e-12)


def test_625_20_20_10_is_reported_in_index_form():
    net = Network([625, 20, 20, 10], "sigmoid", "squared_error")
    report = build_report(derive(net, "w(1)_3_7"))
    assert report.form == "indexed" and not report.paths
    tex = render(report, "tex")
    assert r"\sum_{r} \sum_{q}" in tex
    assert len(tex) < 60_000  # one generic neuron per layer, not 13,150 expanded formulas
    whole = render(build_report(net), "tex")
    assert len(whole) < 60_000


# -- packaging ------------------------------------------------------------------------------------------------


def test_templates_found_in_checkout():
    assert (template_dir() / "report.html.j2").is_file()


def test_wheel_ships_the_templates(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0 and "hatchling" in result.stderr and os.environ.get("CI") != "true":
        pytest.skip("cannot fetch the build backend (hatchling) here: " + result.stderr.strip().splitlines()[-1])
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("symback-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for template in ("report.tex.j2", "report.html.j2", "report.md.j2", "verify.html.j2", "demo.html.j2"):
        assert f"symback/templates/{template}" in names
    for example in ("seed002.toml", "seed002_claims.toml", "digits.toml"):
        assert f"symback/examples/{example}" in names
    assert "symback/datasets/digits25.npz" in names
    # Run from the unpacked wheel, away from the checkout: the packaged files must be found inside it.
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    script = (
        "from symback.resources import example_file, locate; from symback.render.report import template_dir; "
        "print(template_dir()); print(example_file('seed002_claims.toml'))"
    )
    found = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(unpacked)}, timeout=120)
    assert found.returncode == 0, found.stderr
    assert all(line.startswith(str(unpacked / "symback")) for line in found.stdout.splitlines())


def test_rewriting_follows_the_expression_not_the_names():
    """A hidden sigmoid named like the output must get σ(1 − σ), not the tanh output's 1 − a²."""
    network = Network([1, 1, 1], ["sigmoid", "tanh"], "squared_error", names={"output": "a", "a(1)": "a1"})
    report = build_report(derive(network, "w(1)"))
    results = [latex(r.expr) for r in report.results]
    hidden = next(text for text in results if text.startswith(r"\frac{\partial a_{1}}"))
    assert hidden.endswith(r"= a_{1} \left(1 - a_{1}\right)") and "a_{1}^{2}" not in hidden
    output = next(text for text in results if text.startswith(r"\frac{\partial a}"))
    assert output.endswith(r"= 1 - a^{2}")


def test_descent_learning_rate_keeps_its_parentheses_in_tex(seed002_report):
    assert "learning rate {(}0.1{)}" in render(seed002_report, "tex")


def test_pdflatex_that_cannot_run_is_one_line(tmp_path, seed002_report, monkeypatch):
    def hangs(*args, **kwargs):
        raise subprocess.TimeoutExpired("pdflatex", 120)

    monkeypatch.setattr("symback.render.report.shutil.which", lambda name: "/usr/bin/pdflatex")
    monkeypatch.setattr("symback.render.report.subprocess.run", hangs)
    with pytest.raises(SymbackError, match="did not finish"):
        write_report(seed002_report, tmp_path / "b3.pdf")
    assert not list(tmp_path.iterdir())


# -- the HTML page shows the parentheses and minus signs the PDF shows (issue 12, item 7) --------------------


def _step_lists(html: str) -> str:
    """The report's own rule-by-rule step lists (its MathML, its stylesheet), on one short page."""
    import re

    head = html[: html.index("<body>")]
    steps = re.findall(r'<ul class="steps">.*?</ul>', html, flags=re.S)
    assert steps, "the report has no step lists"
    return head + "<body>" + "".join(steps) + "</body></html>"


def _drop_derivative_parentheses(page: str) -> tuple[str, int]:
    """The page with the parentheses after every d/dx, ∂/∂x removed, and how many there were."""
    import re
    from xml.dom.minidom import parseString

    dropped = 0

    def edit(match: re.Match) -> str:
        nonlocal dropped
        math = parseString(match.group(0)).documentElement
        for frac in math.getElementsByTagName("mfrac"):
            numerator = frac.firstChild
            follower = frac.nextSibling
            if numerator.toxml() in ("<mrow><mi>d</mi></mrow>", "<mrow><mo>∂</mo></mrow>") and follower is not None:
                fences = follower.getElementsByTagName("mo")
                if follower.tagName == "mrow" and fences and fences[0].firstChild.data == "(":
                    follower.removeChild(follower.firstChild)
                    follower.removeChild(follower.lastChild)
                    dropped += 1
        return math.toxml()

    return re.sub(r"<math.*?</math>", edit, page, flags=re.S), dropped


def test_html_shows_derivative_parentheses_and_minus_signs_in_chromium(tmp_path):
    """Screenshots of the report's own step lists change when the parentheses after d/dz or the
    minus signs (U+2212) are taken out: so they are there, and the browser draws them."""
    report = build_report(derive(Network([1, 1, 1], "sigmoid", "squared_error"), "w(L)"))
    page = _step_lists(render(report, "html"))
    no_parentheses, dropped = _drop_derivative_parentheses(page)
    assert dropped >= 2  # d/dz (1 + e^{−z}) and ∂/∂w(L) (a(L−1) w(L) + b(L)) at least
    assert page.count("\u2212") >= 2
    hyphens = page.replace("\u2212", "-")
    shots = {}
    for name, text in (("page", page), ("no_parentheses", no_parentheses), ("hyphens", hyphens)):
        work = tmp_path / name
        work.mkdir()
        (work / "page.html").write_text(text, encoding="utf-8")
        shots[name] = chromium_screenshot(work / "page.html", work, size=(1000, 900))
        if os.environ.get("SYMBACK_KEEP_SCREENSHOTS"):
            (Path(os.environ["SYMBACK_KEEP_SCREENSHOTS"]) / f"{name}.png").write_bytes(shots[name])
    assert dark_pixels(shots["page"]) > 300, "screenshot looks blank"
    assert png_pixels(shots["page"])[3] != png_pixels(shots["no_parentheses"])[3]
    assert dark_pixels(shots["page"], step=1) > dark_pixels(shots["no_parentheses"], step=1)
    assert png_pixels(shots["page"])[3] != png_pixels(shots["hyphens"])[3]


# -- fits the page (issue 12, item 5) -------------------------------------------------------------------------


def _pdf_log(report) -> tuple[int, list[str]]:
    """pdflatex's own page count and overfull boxes for ``report`` (a Report, or its LaTeX text)."""
    import re

    from symback.render.report import compile_pdf_with_log

    _, log = compile_pdf_with_log(report if isinstance(report, str) else render(report, "tex"))
    pages = int(re.search(r"Output written on report\.pdf \((\d+) pages?", log).group(1))
    return pages, re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)


def _pdf_logs(labelled_reports):
    """``{label: (pages, overfull)}`` for ``(label, report)`` pairs: each report's LaTeX is written here and
    compiled by pdflatex in a pool of threads meanwhile (pdflatex is a subprocess; the reports are built
    while the earlier ones compile)."""
    import concurrent.futures
    import os

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {label: pool.submit(_pdf_log, render(report, "tex")) for label, report in labelled_reports}
        return {label: future.result() for label, future in futures.items()}


@functools.lru_cache(maxsize=1)
def grid_networks():
    """The issue's small networks with grid layers, {label: (network, parameter names)}: conv1d over 5 inputs
    with 3-tap kernels (same, then valid), conv2d 1×4×4 with a 2×2 kernel, recurrent 3 steps × 2 inputs, 2 hidden."""
    from symback.spec.layer_table import network_from_tables

    return {
        "conv1d": (network_from_tables({"inputs": [1, 5], "cost": "squared_error"}, [
            {"kind": "conv1d", "filters": 1, "kernel": 3, "padding": "same", "activation": "sigmoid"},
            {"kind": "conv1d", "filters": 1, "kernel": 3, "activation": "sigmoid"},
            {"size": 1, "activation": "sigmoid"}]), ("w(1)_0_0_2", "b(1)_0", "w(2)_0_0_1", "w(L)_0_0_1")),
        "conv2d": (network_from_tables({"inputs": [1, 4, 4], "cost": "squared_error"}, [
            {"kind": "conv2d", "filters": 2, "kernel": 2, "activation": "tanh"},
            {"size": 1, "activation": "sigmoid"}]), ("w(1)_1_0_1_0", "b(1)_0", "w(L)_0_1_2_1")),
        "recurrent": (network_from_tables({"inputs": [3, 2], "cost": "squared_error"}, [
            {"kind": "recurrent", "hidden": 2, "activation": "tanh"},
            {"size": 1, "activation": "sigmoid", "reads": "last"}]), ("W(1)_0_1", "U(1)_1_0", "b(1)_1", "w(L)_0_1")),
    }


@pytest.mark.parametrize("label", sorted(grid_networks()))
def test_every_grid_kind_report_is_at_most_two_pages_without_overfull_boxes(label):
    """conv1d, conv2d and recurrent single-parameter PDFs, bare and with one data example."""
    require_program("pdflatex")
    import numpy as np

    from symback.data import Dataset
    from symback.symbolic.parameters import Parameters

    network, names = grid_networks()[label]
    params = Parameters.initialize(network, seed=3)
    data = Dataset.from_arrays(np.linspace(-1, 1, network.sizes[0])[None], [[0.5]])
    logs = _pdf_logs((f"{name}{' with data' if d else ''}", build_report(derive(network, name), p, d))
                     for name in names for p, d in ((None, None), (params, data)))
    for case, (pages, overfull) in logs.items():
        assert overfull == [], f"{label} {case}: overfull {overfull}"
        assert pages <= 2, f"{label} {case}: {pages} pages"


def _single_parameter_reports(seed002):
    """(label, network, parameters, data): each network bare and with one example (seed 002 with its own three)."""
    from symback.data import Dataset
    from symback.symbolic.parameters import Parameters

    networks = {
        "seed002": (seed002.network, None),
        "seed001": (Network([1, 1, 1, 1], "sigmoid", "squared_error", names={"cost": "C0"}), ([[0.5]], [[1.0]])),
        "2-2-2": (Network([2, 2, 2], "sigmoid", "squared_error"), ([[0.05, 0.1]], [[0.01, 0.99]])),
        # Once 3-4 pages, with an equation 602 pt wider than the page; with a data example, once 3 pages.
        "2-3-2": (Network([2, 3, 2], ["relu", "softmax"], "categorical_cross_entropy"), ([[0.05, 0.1]], [[0.0, 1.0]])),
    }
    for label, (network, example) in networks.items():
        yield label, network, None, None
        if example is None:
            yield f"{label} with data", network, seed002.parameters, seed002.data
        else:
            yield f"{label} with data", network, Parameters.initialize(network, seed=0), Dataset.from_arrays(*example)


PAGE_CASES = [f"{name}{data}" for name in ("seed002", "seed001", "2-2-2", "2-3-2") for data in ("", " with data")]


@pytest.mark.parametrize("label", PAGE_CASES)
def test_every_single_parameter_report_is_at_most_two_pages_without_overfull_boxes(seed002, label):
    """Issue 12: every weight and bias of the seed networks, a 2-2-2 sigmoid and a 2-3-2 ReLU/softmax
    network, with default settings, without and with a data example: pdflatex's own log says at most
    2 pages and no overfull line."""
    require_program("pdflatex")
    (network, params, data), = [rest for name, *rest in _single_parameter_reports(seed002) if name == label]
    logs = _pdf_logs((network.name_of(ref), build_report(derive(network, ref), params, data))
                     for ref in network.parameter_refs())
    assert len(logs) == len(list(network.parameter_refs()))
    for name, (pages, overfull) in logs.items():
        assert overfull == [], f"{label} {name}: overfull boxes {overfull}"
        assert pages <= 2, f"{label} {name}: {pages} pages"


@pytest.mark.parametrize("sizes", [[2, 2, 2, 2, 1], [3, 3, 3, 1], [2, 2, 2, 2, 2, 1]], ids=str)
def test_deeper_networks_reports_keep_to_the_page(sizes):
    """Two factors a layer: a 2-2-2-2-1 network's path table ran 117 pt off the page, its δ-form sum
    97 pt, a 2-2-2-2-2-1 network's chain rule 37 pt.  Now the table puts each path's δ form under
    its factors, the chain rule breaks between factors, and scripted names count their width."""
    require_program("pdflatex")
    network = Network(sizes, "sigmoid", "squared_error")
    logs = _pdf_logs((target, build_report(derive(network, target))) for target in ("w(1)_0_0", "b(1)_0"))
    for target, (pages, overfull) in logs.items():
        assert overfull == [], f"{sizes} {target}: overfull boxes {overfull}"
        assert pages <= 3, f"{sizes} {target}: {pages} pages"


def test_a_long_chain_rule_is_broken_between_factors_and_a_short_one_is_not():
    from symback.render.report import Display

    deep = build_report(derive(Network([2, 2, 2, 2, 2, 1], "sigmoid", "squared_error"), "b(1)_0"))
    assert isinstance(deep.chain_lines, Display) and deep.chain_lines.join == "·"
    assert len(deep.chain_lines.parts) >= 2
    tex = render(deep, "tex")
    chain_section = tex.split(r"\section{Chain rule}")[1].split(r"\section")[0]
    assert chain_section.count(r"&\quad \cdot") == len(deep.chain_lines.parts) - 1
    assert chain_section.count(r"\frac{\partial") == 1 + 11  # ∂C/∂b and its 11 factors, none twice
    assert build_report(derive(Network([2, 2, 2], "sigmoid", "squared_error"), "w(1)_0_0")).chain_lines is None


def test_expanded_reports_fit_the_page():
    """--expanded writes the derivative out in the inputs, broken over lines: none runs off the page."""
    require_program("pdflatex")
    for network, target in ((Network([1, 1, 1, 1], "sigmoid", "squared_error"), "w(L-2)"),
                            (Network([2, 2, 2], "sigmoid", "squared_error"), "w(L-1)_0_0")):
        report = build_report(derive(network, target), expanded=True)
        assert report.expanded is not None and len(report.expanded.parts) >= 5
        _, overfull = _pdf_log(report)
        assert overfull == [], f"{target}: overfull boxes {overfull}"


def test_index_form_reports_of_tanh_layers_compile():
    """1 − (a^{(L)}_{j})²: a scripted name squared once printed a^{(L)}_{j}^{2}, a TeX error."""
    require_program("pdflatex")
    network = Network([2, 3, 2], "tanh", "squared_error")
    pages, overfull = _pdf_log(build_report(derive(network, "w(L-1)_0_0", form="indexed")))
    assert pages >= 1 and overfull == []
    pages, overfull = _pdf_log(build_report(network))
    assert pages >= 1 and overfull == []


def test_title_page_says_what_for_which_network_by_whom(tmp_path, seed002):
    tex = render(build_report(derive(seed002.network, "b3"), source="seed002.toml"), "tex")
    assert r"$\displaystyle \frac{\partial \mathrm{SSR}}{\partial b_{3}}$, by the chain rule" in tex
    assert "for the 1-2-1 network (softplus, identity; cost ssr), from seed002.toml" in tex
    assert r"symback \quad \today" in tex
    spec = str(ROOT / "examples" / "seed002.toml")
    assert main(["report", spec, "--wrt", "b3", "--title", "Backprop by hand", "--author", "A. Lecturer",
                 "-o", str(tmp_path / "b3.tex")]) == 0
    written = (tmp_path / "b3.tex").read_text(encoding="utf-8")
    assert "Backprop by hand" in written and r"A. Lecturer \quad \today" in written


# -- seed 002 in its own form (issue 12, item 6) ----------------------------------------------------------------


def _softplus_predictions(spec):
    """Seed 002's predicted values by plain NumPy (tests/reference.py's formulas), not by symback."""
    import numpy as np

    from .reference import ACTIVATIONS as REFERENCE

    softplus = REFERENCE["softplus"][0]
    p = {name: spec.parameters.get(spec.network.resolve(name)) for name in ("w1", "b1", "w2", "b2", "w3", "w4", "b3")}
    x = np.array([0.0, 0.5, 1.0])
    return p["w3"] * softplus(p["w1"] * x + p["b1"]) + p["w4"] * softplus(p["w2"] * x + p["b2"]) + p["b3"]


def test_seed002_sum_over_examples_in_the_seeds_form(seed002):
    """dSSR/db3 = Σ_i −2(observed_i − predicted_i) · 1 = −2(residual_1 + residual_2 + residual_3), the
    numbers substituted: the predictions here are computed by plain NumPy, independently of symback."""
    report = build_report(derive(seed002.network, "b3"), seed002.parameters, seed002.data)
    predicted = _softplus_predictions(seed002)
    shown = ["(" + ("0" if y == 0 else "1") + r" - \left(" + f"{p:.4g}" + r"\right)\right)"
             for y, p in zip((0, 1, 0), predicted, strict=True)]
    tex = render(report, "tex")
    assert (
        r"\frac{\partial \mathrm{SSR}}{\partial b_{3}} &= \sum_{i=1}^{3} - 2 \left(\mathrm{observed}_{i} - "
        r"\mathrm{predicted}_{i}\right) \cdot 1 \\" "\n"
        r"&= - 2 \left(\mathrm{residual}_{1} + \mathrm{residual}_{2} + \mathrm{residual}_{3}\right) \\" "\n"
        r"&= - 2 \left(\left" + r" + \left".join(shown) + r"\right) \\" "\n"
        r"&= -15.7" "\n"
    ) in tex
    assert r"with $\mathrm{residual}_{i} = \mathrm{observed}_{i} - \mathrm{predicted}_{i}$" in tex
    # The same in the terminal.
    text = derive(seed002.network, "b3").text(seed002.parameters, seed002.data)
    assert "  = Σ_{i=1}^{3} −2(observed_i − predicted_i) · 1\n" in text
    assert "  = −2(residual_1 + residual_2 + residual_3),  residual_i = observed_i − predicted_i\n" in text
    # A weight's factor below the cost varies by example: the Σ form, no residual shortcut.
    w3 = build_report(derive(seed002.network, "w3"), seed002.parameters, seed002.data)
    assert w3.numeric.seed_form is not None and len(w3.numeric.seed_form.parts) == 1
    assert "residual" not in render(w3, "tex")


# -- the title page: the spec's title and author (issue 12, item 8) -------------------------------------------


def test_spec_title_and_author_feed_the_title_page(tmp_path):
    spec = tmp_path / "lecture.toml"
    spec.write_text('[network]\nlayers = [1, 1]\n[report]\ntitle = "Backprop, week 3"\nauthor = "A. Lecturer"\n',
                    encoding="utf-8")
    assert main(["report", str(spec), "--wrt", "w(L)", "-o", str(tmp_path / "r.tex")]) == 0
    tex = (tmp_path / "r.tex").read_text(encoding="utf-8")
    assert r"{\Large\bfseries Backprop, week 3\par}" in tex and r"A. Lecturer \quad \today" in tex
    # What was derived stays on the page under the user's title.
    assert r"{\large $\displaystyle \frac{\partial C}{\partial w^{(L)}}$, by the chain rule\par}" in tex
    # --author wins over the spec's.
    assert main(["report", str(spec), "--wrt", "w(L)", "--author", "B", "-o", str(tmp_path / "r.md")]) == 0
    assert "— B, " in (tmp_path / "r.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("table", "message"), [
    ('title = "x\\ny"', "[report] title must be one line of text (no line breaks or control characters)"),
    ("author = 3", "[report] author must be text, not 3"),
    ('titel = "a"', "unknown key 'titel' in [report] (did you mean 'title'?"),
    (f'title = "{"x" * 201}"', "[report] title is 201 characters long; at most 200 fit a title page"),
])
def test_spec_title_errors_are_one_line(tmp_path, capsys, table, message):
    spec = tmp_path / "s.toml"
    spec.write_text(f"[network]\nlayers = [1, 1]\n[report]\n{table}\n", encoding="utf-8")
    assert main(["report", str(spec), "--wrt", "w(L)", "-o", str(tmp_path / "r.tex")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r.tex").exists()


# -- the network report's notation (issue 12, notation slips) -------------------------------------------------


def test_network_report_writes_its_matrix_pattern_as_math_with_each_layers_function():
    network = Network([2, 3, 2], ["relu", "softmax"], "categorical_cross_entropy")
    tex = render(build_report(network), "tex")
    assert "∇_b(l)" not in tex and "nabla_b" not in tex  # no raw names in the prose any more
    assert (r"\[\delta^{(l)} = \left(\left(W^{(l+1)}\right)^{T} \delta^{(l+1)}\right) \odot "
            r"\mathrm{ReLU}'\left(z^{(l)}\right), \qquad \nabla_{b^{(l)}} C = \delta^{(l)}, \qquad "
            r"\nabla_{W^{(l)}} C = \delta^{(l)} \left(a^{(l-1)}\right)^{T}\]") in tex
    assert r"\sigma'" not in tex  # a ReLU network's derivatives are ReLU′, never σ′
    # BP2 in the factor forms: the layer's derivative named and first, Σ_k w_kj δ_k (Nielsen's order), and
    # one index letter per role in the layer's block: j is the layer's neuron in BP2, BP3 and BP4 alike.
    assert (r"\delta^{(L-1)}_{j} = \mathrm{ReLU}'\left(z^{(L-1)}_{j}\right) \sum_{k} w^{(L)}_{kj} "
            r"\delta^{(L)}_{k}") in tex
    assert r"\frac{\partial C}{\partial b^{(L-1)}_{j}} = \delta^{(L-1)}_{j}" in tex
    assert r"\frac{\partial C}{\partial w^{(L-1)}_{jk}} = x_{k} \delta^{(L-1)}_{j}" in tex
    html = render(build_report(network), "html")
    assert "<mo>∇</mo>" in html and "∇_b" not in html


# -- expanded in the inputs, on request (issue 12, item 2) -----------------------------------------------------


def test_expanded_on_request_in_report_and_derive(tmp_path, capsys):
    spec = tmp_path / "chain.toml"
    spec.write_text('[network]\nlayers = [1, 1, 1]\nactivations = "sigmoid"\n', encoding="utf-8")
    assert main(["derive", str(spec), "--wrt", "w(L-1)", "--expanded"]) == 0
    out = capsys.readouterr().out
    assert "in the inputs: ∂C/∂w(L-1)\n  = x\n  · σ(b(L-1) + w(L-1)·x) (1 − σ(b(L-1) + w(L-1)·x))\n  · w(L)\n" in out
    assert main(["report", str(spec), "--wrt", "w(L-1)", "--expanded", "-o", str(tmp_path / "e.md")]) == 0
    md = (tmp_path / "e.md").read_text(encoding="utf-8")
    assert "## Expanded in the inputs" in md and r"&\quad \cdot w^{(L)}" in md
    # Not without asking.
    assert main(["report", str(spec), "--wrt", "w(L-1)", "-o", str(tmp_path / "plain.md")]) == 0
    assert "Expanded" not in (tmp_path / "plain.md").read_text(encoding="utf-8")


def test_expanded_index_form_is_refused_in_one_line(tmp_path, capsys):
    spec = tmp_path / "wide.toml"
    spec.write_text('[network]\nlayers = [2, 3, 2]\nactivations = "sigmoid"\n', encoding="utf-8")
    assert main(["derive", str(spec), "--wrt", "w(L)_0_0", "--form", "indexed", "--expanded"]) == 2
    err = capsys.readouterr().err
    assert "--expanded needs the explicit form" in err and err.count("\n") == 1
    assert main(["report", str(spec), "--wrt", "w(L)_0_0", "--form", "indexed", "--expanded",
                 "-o", str(tmp_path / "r.tex")]) == 2
    assert not (tmp_path / "r.tex").exists()


def test_index_form_value_of_a_residual_network_is_the_compiled_gradient():
    """The report's number for ∂C/∂θ of a residual network reads the compiled forward pass (skip edge and
    all): it equals the compiled gradient and central differences of a plain NumPy forward pass."""
    import numpy as np

    from symback.render.report import _index_form_value
    from symback.symbolic.network import NodeRef

    from . import reference

    net = Network([2, 2, 2, 1], "tanh", "half_squared_error", skips={2: 0})
    params = symback.Parameters.initialize(net, seed=3)
    data = symback.Dataset.from_arrays([[0.3, -0.7], [1.1, 0.4], [-0.2, 0.9]], [0.5, -0.1, 0.8])
    gradient = compile_network(net).gradient(params, data, respect_frozen=False)

    def cost(p):
        (W1, W2, W3), (b1, b2, b3) = p.weights, p.biases
        stack = [("dense", W1, b1, "tanh"), ("residual", W2, b2, "tanh", 2), ("dense", W3, b3, "tanh")]
        return reference.stack_cost(stack, data.X, data.Y, "half_squared_error")

    for ref in (NodeRef("w", 1, 1, 0), NodeRef("b", 2, 0), NodeRef("w", 3, 0, 1)):
        arrays, index = (gradient.weights, (ref.j, ref.k)) if ref.kind == "w" else (gradient.biases, (ref.j,))
        value = _index_form_value(derive(net, ref, form="indexed"), params, data)
        assert value == pytest.approx(float(arrays[ref.layer - 1][index]), rel=1e-12)
        costs = []
        for step in (1e-6, -1e-6):
            moved = params.copy()
            (moved.weights if ref.kind == "w" else moved.biases)[ref.layer - 1][index] += step
            costs.append(cost(moved))
        assert value == pytest.approx((costs[0] - costs[1]) / 2e-6, rel=1e-6)
