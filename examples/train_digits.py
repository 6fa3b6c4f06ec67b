"""Seed 000's 625-20-20-10 network trained on the shipped 25x25 MNIST digits; prints the loss curve.

    python examples/train_digits.py        # about 3 s on 2 cores (see README "Training")

``History.loss`` is each epoch's running loss (every batch's loss before its step); the test
accuracy is measured after the epoch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import symback
from symback.datasets import load_digits
from symback.training.train import Trainer, TrainingConfig

SPEC = Path(__file__).with_name("digits.toml")
EPOCHS_SHOWN = (1, 2, 3, 5, 10, 20, 30, 40)


def run() -> dict[str, Any]:
    """Train as ``examples/digits.toml`` says and print the table; returns the numbers the README quotes."""
    spec = symback.load_spec(SPEC)
    config = TrainingConfig.from_section(spec.sections["training"], progress=False)
    train, test = load_digits(config.test_fraction, seed=config.seed)
    start = time.perf_counter()
    result = Trainer(spec.network, config).fit(spec.parameters, train, test)
    seconds = time.perf_counter() - start
    history = result.history
    print(f"{len(train)} training / {len(test)} test digits, {config.optimizer} η={config.learning_rate}, "
          f"batch {config.batch_size}, {config.dtype}")
    print("epoch   loss     train acc  test acc")
    for epoch in EPOCHS_SHOWN:
        if epoch <= len(history.loss):
            i = epoch - 1
            print(f"{epoch:>5}  {history.loss[i]:.4f}   {history.accuracy[i]:7.2%}   {history.test_accuracy[i]:7.2%}")
    print(f"test accuracy {history.test_accuracy[-1]:.2%} after {result.epochs} epochs in {seconds:.2f} s")
    return {"config": config, "train": len(train), "test": len(test), "result": result, "seconds": seconds}


if __name__ == "__main__":
    run()
