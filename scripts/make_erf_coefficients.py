"""Print the coefficients of symback.compile.compiler.erf_array (pasted into symback/compile/compiler.py).

For |x| ≤ 1, erf(x) = x·P(x²) with P the Taylor series 2/√π Σ (−1)^n u^n / (n!(2n + 1)), 18 terms
(the first left out is below 1e-17 of the sum).  For 1 < |x| < 6, erf(x) = 1 − e^{−x²}·g(x) with
g(x) = erfc(x)·e^{x²}, smooth and slowly decreasing, as Chebyshev series on [1, 3] and [3, 6], taken
at 40-digit precision from 40 Chebyshev nodes and cut where every later coefficient is below 1e-17
of g on the piece.  tests/test_accuracy.py checks erf_array against mpmath to 1e-15 relative and
that these coefficients are the ones this script prints.

    python scripts/make_erf_coefficients.py
"""

from __future__ import annotations

import mpmath as mp

TAYLOR_TERMS = 18
PIECES = ((1, 3), (3, 6))
NODES = 40


def taylor() -> list[float]:
    with mp.workdps(40):
        return [float(2 / mp.sqrt(mp.pi) * (-1) ** n / (mp.factorial(n) * (2 * n + 1))) for n in range(TAYLOR_TERMS)]


def chebyshev(a: int, b: int) -> list[float]:
    with mp.workdps(40):
        def g(x):
            return mp.erfc(x) * mp.exp(x * x)

        a, b = mp.mpf(a), mp.mpf(b)
        theta = [mp.pi * (j + mp.mpf(1) / 2) / NODES for j in range(NODES)]
        values = [g((b - a) / 2 * mp.cos(t) + (a + b) / 2) for t in theta]
        c = [2 * mp.fsum(v * mp.cos(k * t) for v, t in zip(values, theta)) / NODES for k in range(NODES)]
        c[0] /= 2
        smallest = g(b)
        keep = next(n for n in range(NODES) if all(abs(x) < mp.mpf("1e-17") * smallest for x in c[n:]))
        return [float(x) for x in c[:keep]]


def main() -> None:
    print("_ERF_TAYLOR = (")
    for value in taylor():
        print(f"    {value!r},")
    print(")")
    print("_ERFC_PIECES = (")
    for a, b in PIECES:
        print(f"    ({a}.0, {b}.0, (")
        for value in chebyshev(a, b):
            print(f"        {value!r},")
        print("    )),")
    print(")")


if __name__ == "__main__":
    main()
