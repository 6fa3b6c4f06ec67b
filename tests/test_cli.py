"""The command line: subcommands, text and JSON output, one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from symback.cli import main

SEED002 = str(Path(__file__).resolve().parent.parent / "examples" / "seed002.toml")


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "derive" in out and "info" in out


def test_derive_text(capsys):
    assert main(["derive", SEED002, "--wrt", "b3"]) == 0
    out = capsys.readouterr().out
    assert "∂SSR/∂predicted  = −2(observed − predicted)" in out
    assert "value:       ∂SSR/∂b3 = -15.6551" in out


def test_derive_json(capsys):
    assert main(["derive", SEED002, "--wrt", "w(L)_0_1", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["target"] == "w4"
    assert [f["notation"] for f in result["factors"]] == ["∂SSR/∂predicted", "∂predicted/∂z(L)", "∂z(L)/∂w4"]
    assert result["product"]["text"] and result["product"]["latex"]
    assert isinstance(result["value"], float)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["derive", SEED002, "--wrt", "w9"], "unknown name 'w9'"),
        (["derive", "/nonexistent.toml", "--wrt", "b3"], "not found"),
        (["derive", SEED002], "the following arguments are required: --wrt"),
        (["derive", SEED002, "--wrt", "observed"], "weights, biases, z and a"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_errors_are_one_line_with_exit_status_2(capsys, argv, message):
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
    assert not any("Traceback" in line for line in err)


def test_console_module_runs_without_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[network]\nlayers = [1, 1]\nactivations = {formula = \"__import__('os').system('x')\"}\n")
    result = subprocess.run(
        [sys.executable, "-m", "symback", "derive", str(bad), "--wrt", "w(L)"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "unexpected character" in result.stderr


def test_derive_json_for_several_paths_lists_the_index_form_factors(tmp_path, capsys):
    spec = tmp_path / "wide.toml"
    spec.write_text('[network]\nlayers = [2, 3, 2]\n[data]\nx = [[0.1, 0.2]]\ny = [[1, 0]]\n', encoding="utf-8")
    assert main(["derive", str(spec), "--wrt", "a(L-1)_1", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["paths"]) == 2
    assert [f["notation"] for f in result["factors"]] == ["∂C/∂a(L)[j]", "∂a(L)[j]/∂z(L)[j]", "∂z(L)[j]/∂a(L-1)[k]"]
    assert result["chain"]["sum_over"] == ["j"]


# -- issue 11: --wrt names, NumPy warnings said once in words -----------------------------------------


@pytest.mark.parametrize("name", ["B3", "b3", "W4", "b(L)"])
def test_wrt_takes_the_names_verify_takes(capsys, name):
    """verify matches the network's names ignoring case when unambiguous; --wrt does the same."""
    assert main(["derive", SEED002, "--wrt", name]) == 0
    assert "∂SSR/∂" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("b33", "unknown name 'b33' in network 1-2-1 (did you mean 'b3'?"),
        ("predictd", "unknown name 'predictd' in network 1-2-1 (did you mean 'predicted'?"),
        ("b(1)_" + "9" * 4301, "unknown name 'b(1)_9999"),
        ("w1\nw2", "unknown name 'w1\\nw2'"),
    ],
)
def test_wrt_unknown_names_are_one_short_line(capsys, name, message):
    assert main(["derive", SEED002, "--wrt", name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and len(err) < 400


def _warning_spec(tmp_path):
    spec = tmp_path / "sqrt.toml"
    spec.write_text('[network]\nlayers = [1, 1]\nactivations = {formula = "sqrt(z - 10)"}\n[data]\nx = [1]\ny = [1]\n')
    return str(spec)


def test_numpy_warnings_become_one_note_in_words(tmp_path, capsys):
    """sqrt(z - 10) at z < 10 is nan: NumPy's RuntimeWarning (a traceback-like pair of lines per site,
    an error under this suite's filterwarnings) becomes one note on stderr."""
    main(["report", _warning_spec(tmp_path), "--wrt", "b(L)", "-o", str(tmp_path / "r.md")])
    err = capsys.readouterr().err
    assert err == "symback: note: the computation produced invalid values (nan) in sqrt (results may hold nan or inf)\n"


def test_numpy_warnings_of_a_check_with_a_huge_step(capsys):
    main(["check", SEED002, "--step", "1e308"])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("symback: note: the computation produced overflows (inf) in ")
    assert "RuntimeWarning" not in err[0]


def test_other_warnings_still_reach_the_user():
    import warnings

    from symback.cli import NumericNotes

    with pytest.warns(UserWarning, match="kept"), NumericNotes() as notes:
        warnings.warn("kept", UserWarning, stacklevel=1)
    assert notes.line() is None


def test_the_cli_s_copies_of_stage_constants_match_the_stages():
    """The parser is built without importing a stage, so a few choices are written in the CLI: they must agree."""
    from symback import demo
    from symback.cli import demo as demo_command
    from symback.cli import train as train_command
    from symback.training import train

    assert train_command.DTYPES == tuple(sorted(train._DTYPES))
    assert (demo_command._EPOCHS, demo_command._FAST_EPOCHS) == (demo.EPOCHS, demo.FAST_EPOCHS)


def test_every_command_is_listed_in_help_order(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    listed = ["info", "derive", "verify", "check", "report", "train", "demo", "sweep"]
    positions = [out.index(f"    {name} ") for name in listed]
    assert positions == sorted(positions)
