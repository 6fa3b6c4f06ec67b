"""A small convolutional network on the shipped 25×25 digits, beside seed 000's dense 625-20-20-10.

``examples/conv_digits.toml``: 8 filters of 5×5 over the picture (valid padding, 8×21×21 ReLU
outputs), a softmax readout, cross-entropy, SGD — its backward pass derived by the chain-rule engine
from the convolution's one formula and compiled to the shifted-index lowering (correlations with the
flipped kernel).  ``examples/digits.toml`` is the dense network.  Both train on the same 4,000 digits
and are tested on the same 1,000.

Run:  python examples/conv_digits.py [--fast]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

import symback
from symback.datasets import load_digits
from symback.training.train import Trainer, TrainingConfig

HERE = Path(__file__).parent
SPECS = {"convolutional": HERE / "conv_digits.toml", "dense 625-20-20-10": HERE / "digits.toml"}


def run(fast: bool = False) -> dict[str, Any]:
    """Train both specs as they say (``fast``: 1,000 training digits, 2 epochs each) and print the table."""
    results: dict[str, Any] = {}
    for label, path in SPECS.items():
        spec = symback.load_spec(path)
        section = dict(spec.sections["training"])
        if fast:
            section["epochs"] = 2
        config = TrainingConfig.from_section(section, progress=False)
        train, test = load_digits(config.test_fraction, seed=config.seed)
        if fast:
            train = train.take(np.arange(1000))
        start = time.perf_counter()
        result = Trainer(spec.network, config).fit(spec.parameters, train, test)
        seconds = time.perf_counter() - start
        accuracy = result.history.test_accuracy[-1]
        results[label] = {"accuracy": accuracy, "epochs": result.epochs, "seconds": seconds,
                          "parameters": spec.network.n_parameters, "layers": [l.describe() for l in spec.network.layers]}
        print(f"{label:20s} {spec.network.n_parameters:>6,} parameters  {result.epochs:>2} epochs  "
              f"test accuracy {accuracy:6.2%}  ({seconds:.1f} s)")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="1,000 training digits, 2 epochs (what the tests run)")
    run(parser.parse_args().fast)


if __name__ == "__main__":
    main()
