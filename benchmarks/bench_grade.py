"""Time marking a class: 30 generated submissions of the 2-2-2 exercise (right, one slip, two slips, unreadable).

Run: python benchmarks/bench_grade.py  (prints measured seconds; nothing here is asserted)

The class: 14 model solutions, 8 with σ′(net_o1) left out of ∂E/∂w5 (the update following from it),
4 with that slip and an arithmetic slip in ∂out_h1/∂net_h1, 4 unreadable (empty, binary, not UTF-8,
no variant and no numbers).  Each student has their own variant.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from symback.classroom.exercise import draw_variants, load_exercise, solve, submission_text, write_exercise  # noqa: E402
from symback.classroom.grade import _DECIDED, grade, load_key, write_grades  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLASS = 30


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _one_slip(solution) -> dict[str, str]:
    """∂E/∂w5 without σ′(net_o1), by plain arithmetic on the variant's numbers, and the update from it."""
    v = {k: float(x) for k, x in solution.variant.values.items()}
    h = [_sigmoid(v["w1"] * v["i1"] + v["w2"] * v["i2"] + v["b1"]), _sigmoid(v["w3"] * v["i1"] + v["w4"] * v["i2"] + v["b2"])]
    o1 = _sigmoid(v["w5"] * h[0] + v["w6"] * h[1] + v["b3"])
    lines = {line.label: line for line in solution.lines}
    wrong = f"{(o1 - v['t1']) * h[0]:.4f}"

    def p(text: str) -> str:
        return f"({text})" if text.startswith("-") else text

    return {
        "2.3": f"∂E/∂w5 = ∂E/∂out_o1 × out_h1 = {p(lines['2.1'].written)} × {lines['1.2'].written} = {wrong}",
        "4.1": f"new w5 = w5 - η × ∂E/∂w5 = {p(str(v['w5']))} - 0.5 × {p(wrong)} = {v['w5'] - 0.5 * float(wrong):.4f}",
    }


def build_class(folder: Path) -> tuple[Any, list[Path], list[str]]:
    """Write the 30 sheets (no PDF) and the 30 papers into ``folder``: (key, paper paths, what each paper is)."""
    exercise = load_exercise(ROOT / "examples" / "exercise_222.toml")
    write_exercise(exercise, CLASS, 7, folder / "sheets", pdf=False)
    solutions = [solve(exercise, v) for v in draw_variants(exercise, CLASS, seed=7)]
    papers = folder / "papers"
    papers.mkdir()
    kinds = []
    for index, solution in enumerate(solutions):
        name = papers / f"student{index + 1:02d}.md"
        student = f"Student {index + 1}"
        if index < 14:
            kind, text = "right", submission_text(solution, student=student)
        elif index < 22:
            kind, text = "one slip", submission_text(solution, student=student, lines=_one_slip(solution))
        elif index < 26:
            value = next(line for line in solution.lines if line.label == "3.4").value * 1.1
            kind, text = "two slips", submission_text(solution, student=student, lines=_one_slip(solution),
                                                      values={"3.4": f"{value:.4f}"})
        else:
            kind = "unreadable"
            text = ["", "\x00\x01binary", None, "just some words\n"][index - 26]
        kinds.append(kind)
        if text is None:
            name.write_bytes(b"caf\xe9\n")
        else:
            name.write_text(text, encoding="utf-8")
    return load_key(folder / "sheets" / "key.json"), sorted(papers.iterdir()), kinds


def run(folder: Path) -> dict[str, Any]:
    """Build the class, mark it from a cold start and write the results; what happened, with the times."""
    start = time.perf_counter()
    key, paths, kinds = build_class(folder)
    built = time.perf_counter() - start
    _DECIDED.clear()  # a cold start: every symbolic identity decided afresh
    start = time.perf_counter()
    marked = grade(key, paths)
    graded = time.perf_counter() - start
    start = time.perf_counter()
    write_grades(key, marked, folder / "marked")
    written = time.perf_counter() - start
    totals: dict[str, list[float]] = {}
    for kind, m in zip(kinds, marked, strict=True):
        totals.setdefault(kind, []).append(m.total)
    return {"key": key, "marked": marked, "kinds": kinds, "totals": totals, "built": built, "graded": graded,
            "written": written, "slips": Counter(slip for m in marked for slip in m.slips),
            "reasons": [m.reason for m in marked if m.reason]}


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        results = run(Path(work))
        key, marked = results["key"], results["marked"]
        print(f"exercise: {CLASS} variants and papers (md, html, tex, svg, key.json; no PDF) in {results['built']:.1f} s")
        print(f"grade: {len(marked)} submissions marked in {results['graded']:.1f} s, gradebook + {len(marked)} "
              f"verdicts (html, md) + summary written in {results['written']:.1f} s; total "
              f"{results['graded'] + results['written']:.1f} s")
        for kind, totals in results["totals"].items():
            print(f"  {kind:10s} {len(totals):2d} students, totals {sorted(set(totals))} of {key.out_of:g}")
        print(f"  slips named: {dict(results['slips'])}; unreadable: {results['reasons']}")
        paths = [Path(work) / "papers" / "student01.md", Path(work) / "papers" / "student02.md"]
        _DECIDED.clear()
        start = time.perf_counter()
        grade(key, paths[:1])
        print(f"one model solution, cold: {time.perf_counter() - start:.2f} s; ", end="")
        start = time.perf_counter()
        grade(key, paths[1:2])
        print(f"the next, with the class's identities decided: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
