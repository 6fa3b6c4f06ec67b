"""Seed 000 ("dials" and the dog-breed network), reproduced on the shipped 25×25 digits, in numbers.

The seed's network reads a 25×25 = 625-pixel grayscale image into 20 + 20 hidden neurons and 10
outputs (its ten dog breeds; here the ten digits, breed i = digit i): 13,100 weights ("dials") and
50 biases.  This example

1. builds the 625-20-20-10 network of examples/digits.toml and checks those counts;
2. replays the seed's story on one test image of class 3 (its "beagle"): the ten output
   'certainties' of the untrained network, and one gradient step that dials the correct answer up
   and the highest wrong one down;
3. shows the dials: the parameters whose partials ∂C/∂p are largest, which way gradient descent
   turns each (up/down) and by how much (−η ∂C/∂p), before and after training — and compares them
   with the dials the seed says the network looks for ("the dials with the greatest weights");
4. trains the network (40 epochs; --fast: 5) and prints the loss curve and the test accuracy;
5. with --out and matplotlib (``pip install 'symback[plot]'``): the loss curve, the dials as a bar
   chart, and the first layer's 20 weight maps and 20 gradient maps as 25×25 images (PNG).

Run:  python examples/seed000_dials.py [--out DIR] [--fast]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import symback
from symback.datasets import load_digits
from symback.training.dials import rank_dials
from symback.training.optimizers import get_optimizer
from symback.training.plots import PLOT_HINT, have_matplotlib
from symback.training.train import Trainer, TrainingConfig

SPEC = Path(__file__).resolve().parent / "digits.toml"

BREEDS = ("German shepherd", "Labrador retriever", "Rottweiler", "beagle", "bulldog", "golden retriever",
          "Great Dane", "poodle", "Doberman", "dachshund")
#: The certainties the seed's untrained network gives its beagle picture.
SEED_CERTAINTIES = (0.3, 0.8, 0.5, 0.2, 0.3, 0.6, 0.3, 0.3, 0.4, 0.7)
BEAGLE = BREEDS.index("beagle")  # class 3
TOP = 10  # dials shown
STEP_ETA = 0.1  # the seed's "turn the dials a tiny bit": one small step for the story of one picture
FAST_EPOCHS = 5


def run(out: Path | None = None, fast: bool = False) -> dict[str, Any]:
    """Print the seed's story with measured numbers; write pictures into ``out`` when matplotlib is installed."""
    results: dict[str, Any] = {}
    spec = symback.load_spec(SPEC)
    network, initial = spec.network, spec.parameters
    config = TrainingConfig.from_section(spec.sections["training"], progress=False)
    if fast:
        config = replace(config, epochs=FAST_EPOCHS)
    train, test = load_digits(config.test_fraction, seed=config.seed)
    compiled = symback.CompiledNetwork(network)
    eta = config.learning_rate

    # 1. The counts.
    print(f"1. The network {'-'.join(map(str, network.sizes))} ({', '.join(a.label for a in network.activations)}, "
          f"{network.cost.name})\n")
    per_layer = [network.sizes[l] * network.sizes[l - 1] for l in range(1, network.depth + 1)]
    print(f"  weights: {' + '.join(f'{n:,}' for n in per_layer)} = {network.n_weights:,} dials")
    print(f"  biases:  {' + '.join(str(n) for n in network.sizes[1:])} = {network.n_biases}")
    assert per_layer == [12_500, 400, 200]
    assert network.n_weights == 13_100 and network.n_biases == 50
    results.update({"weights": network.n_weights, "biases": network.n_biases})

    # 2. The seed's story on one picture: certainties, and one gradient step on it alone.
    index = int(np.flatnonzero(test.labels == BEAGLE)[0])
    picture = test.take([index])
    before = compiled.predict(initial, picture.X)[0]
    # C0 = Σ_j (a_j − y_j)²: the cost of this one picture (seed 001's C0).
    partials = 2 * (before - picture.Y[0])
    stepped = _one_step(compiled, initial, picture, STEP_ETA)
    after = compiled.predict(stepped, picture.X)[0]
    wrong = [j for j in range(10) if j != BEAGLE]
    highest_wrong = max(wrong, key=lambda j: before[j])
    c0_before, c0_after = compiled.cost(initial, picture), compiled.cost(stepped, picture)
    print(f"\n2. One test picture of class {BEAGLE} (the seed's beagle) through the untrained network\n")
    print(f"  {'output j':<22} {'seed':>5} {'a_j':>7} {'∂C0/∂a_j':>9} {'after 1 step':>13}")
    for j, breed in enumerate(BREEDS):
        mark = "  <- correct" if j == BEAGLE else ("  <- highest wrong" if j == highest_wrong else "")
        print(f"  {j} {breed:<20} {SEED_CERTAINTIES[j]:5.1f} {before[j]:7.3f} {partials[j]:9.3f} "
              f"{after[j]:13.3f}{mark}")
    print(f"  one gradient step (η = {STEP_ETA:g}) on this picture alone: {BREEDS[BEAGLE]} {before[BEAGLE]:.3f} -> "
          f"{after[BEAGLE]:.3f} (up), {BREEDS[highest_wrong]} {before[highest_wrong]:.3f} -> "
          f"{after[highest_wrong]:.3f} (down); C0 {c0_before:.3f} -> {c0_after:.3f}")
    assert after[BEAGLE] > before[BEAGLE] and after[highest_wrong] < before[highest_wrong] and c0_after < c0_before
    choice_before, choice_after = int(np.argmax(before)), int(np.argmax(after))
    print(f"  the network's answer: {BREEDS[choice_before]} ({before[choice_before]:.3f}) before the step, "
          f"{BREEDS[choice_after]} ({after[choice_after]:.3f}) after it")
    largest = int(np.argmax(np.abs(partials)))
    print(f"  the seed says the correct answer 'has the most room for adjustment'; here the largest |∂C0/∂a_j| is "
          f"output {largest} ({BREEDS[largest]}, {partials[largest]:+.3f}); the correct one's is "
          f"{partials[BEAGLE]:+.3f}")
    held = _same_story_count(compiled, initial, test.take(np.flatnonzero(test.labels == BEAGLE)), STEP_ETA)
    print(f"  the same step does both for {held[0]} of the {held[1]} test pictures of class {BEAGLE}")
    results.update({
        "picture": index, "answer": (choice_before, choice_after),
        "certainties": before.tolist(), "certainties after step": after.tolist(),
        "highest wrong": highest_wrong, "step holds": held,
    })

    # 3. The dials of the untrained network (partials over the whole training set).
    print(f"\n3. The dials: the {TOP} parameters with the largest |∂C/∂p| on the {len(train):,} training "
          f"pictures, untrained network\n")
    gradient = compiled.gradient(initial, train)  # every partial at once: the dials, the seed's ranking, the maps
    dials_before = rank_dials(network, initial, gradients=gradient, learning_rate=eta, top=TOP)
    _print_dials(dials_before, eta)
    _check_dials(compiled, initial, train, dials_before)
    # Untrained, every output sits near 0.5 while nine of the ten targets are 0: the output layer's dials matter most.
    outputs = compiled.predict(initial, train.X)
    print(f"  untrained, the outputs average {outputs.mean():.3f} while 9 of every 10 targets are 0: the top "
          f"{TOP} dials are all in layer L and all turn down")
    assert all(d.ref.layer == network.depth and d.direction == "down" for d in dials_before)
    overlap, ranks = _seed_dials(initial, gradient)
    print(f"  the seed says the network looks for 'the dials with the greatest weights': the {TOP} largest |w| are "
          f"{overlap} of these {TOP}; their |∂C/∂p| ranks among {network.n_parameters:,} are "
          f"{', '.join(str(r + 1) for r in ranks)}. A dial's setting does not say how much it matters: the "
          f"top dials here are biases set at 0. Nor does backpropagation turn dials 'to see if that lessens "
          f"the cost': the partials say which way before anything is turned.")
    results.update({"dials before": dials_before, "seed dials overlap": overlap})

    # 4. Training.
    print(f"\n4. Training: {config.optimizer} η = {eta:g}, batches of {config.batch_size}, {config.epochs} epochs, "
          f"{len(train):,} training / {len(test):,} test pictures, {config.dtype}\n")
    result = Trainer(network, config, compiled=compiled).fit(initial, train, test)
    history = result.history
    print("  epoch   loss     train acc  test acc")
    for epoch in sorted({1, 2, 3, 5, 10, 20, 30, 40, len(history.loss)}):
        if epoch <= len(history.loss):
            i = epoch - 1
            print(f"  {epoch:>5}  {history.loss[i]:.4f}   {history.accuracy[i]:7.2%}   {history.test_accuracy[i]:7.2%}")
    accuracy = history.test_accuracy[-1]
    print(f"  test accuracy {accuracy:.2%} after {result.epochs} epochs (chance: 10 %)")
    assert history.loss[-1] < history.loss[0] and accuracy > 0.5
    results.update({"epochs": result.epochs, "loss": list(history.loss), "test accuracy": accuracy})

    trained = result.parameters.astype(np.float64)
    print(f"\n  The dials after training (η = {eta:g}):\n")
    dials_after = rank_dials(network, trained, train, learning_rate=eta, top=TOP)
    _print_dials(dials_after, eta)
    _check_dials(compiled, trained, train, dials_after)
    shrink = abs(dials_before[0].partial) / abs(dials_after[0].partial)
    print(f"  the largest |∂C/∂p| fell from {abs(dials_before[0].partial):.3g} to {abs(dials_after[0].partial):.3g} "
          f"({shrink:,.0f}×): no dial moves the cost as much as before training")
    assert abs(dials_after[0].partial) < abs(dials_before[0].partial)
    results["dials after"] = dials_after

    # 5. Pictures.
    results["pictures"] = []
    if not have_matplotlib():
        print(f"\n5. No pictures: {PLOT_HINT}")
    elif out is None:
        print("\n5. Pictures: give --out DIR to write them")
    else:
        results["pictures"] = _pictures(Path(out), history, dials_before, dials_after, trained, gradient)
    return results


def _one_step(compiled: symback.CompiledNetwork, params: symback.Parameters, data: symback.Dataset,
              eta: float) -> symback.Parameters:
    stepped = params.copy()
    get_optimizer("sgd", learning_rate=eta).step(stepped, compiled.gradient(params, data))
    return stepped


def _same_story_count(compiled, params, pictures: symback.Dataset, eta: float) -> tuple[int, int]:
    """For how many pictures one step on that picture alone raises its class and lowers its highest wrong one."""
    before = compiled.predict(params, pictures.X)
    held = 0
    for i in range(len(pictures)):  # one separate step per picture: a demonstration, not a hot path
        one = pictures.take([i])
        after = compiled.predict(_one_step(compiled, params, one, eta), one.X)[0]
        label = int(one.labels[0])
        scores = before[i].copy()
        scores[label] = -np.inf
        worst = int(np.argmax(scores))
        held += bool(after[label] > before[i, label] and after[worst] < before[i, worst])
    return held, len(pictures)


def _print_dials(dials, eta: float) -> None:
    print(f"  {'#':>2}  {'dial':<16} {'value':>9} {'∂C/∂p':>11}  {'turn':<4} {'by −η∂C/∂p':>11}")
    for rank, dial in enumerate(dials, 1):
        print(f"  {rank:>2}  {dial.name:<16} {dial.value:9.4f} {dial.partial:11.3e}  {dial.direction:<4} "
              f"{dial.turn:11.3e}")


def _check_dials(compiled, params, data, dials, h: float = 1e-6) -> None:
    """The ranking is by |∂C/∂p|, the turn is −η ∂C/∂p, and the top partial agrees with central differences."""
    magnitudes = [abs(d.partial) for d in dials]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert all((d.direction == "up") == (d.partial < 0) for d in dials)
    top = dials[0]
    up, down = params.copy(), params.copy()
    up.set(top.ref, top.value + h)
    down.set(top.ref, top.value - h)
    numeric = (compiled.cost(up, data) - compiled.cost(down, data)) / (2 * h)
    assert abs(numeric - top.partial) <= 1e-6 * abs(top.partial), (top.name, numeric, top.partial)
    print(f"  (∂C/∂{top.name} = {top.partial:.6e}; central differences: {numeric:.6e})")


def _seed_dials(params, gradient) -> tuple[int, list[int]]:
    """How many of the largest-|value| parameters are among the largest-|partial| ones, and their partial ranks."""
    partial = gradient.as_parameters().flat()  # in Network.parameter_refs order, like Parameters.flat
    by_partial = np.argsort(-np.abs(partial), kind="stable")
    rank = np.empty_like(by_partial)
    rank[by_partial] = np.arange(len(by_partial))
    by_value = np.argsort(-np.abs(params.flat()), kind="stable")[:TOP]
    overlap = len(set(by_value.tolist()) & set(by_partial[:TOP].tolist()))
    return overlap, sorted(int(rank[i]) for i in by_value)


def _pictures(out: Path, history, dials_before, dials_after, trained, gradient) -> list[str]:
    from symback.training import plots

    print(f"\n5. Pictures in {out}")
    curves = {"training loss": history.loss}
    if history.test_loss:
        curves["test loss"] = history.test_loss
    figures = {
        "seed000_loss.png": plots.loss_curves(curves, title="625-20-20-10 on the 25×25 digits"),
        "seed000_dials_before.png": plots.dials_chart(dials_before, title="dials to turn, untrained network"),
        "seed000_dials_after.png": plots.dials_chart(dials_after, title="dials to turn, trained network"),
        "seed000_weights.png": plots.weight_maps(trained.weights[0], title="first layer: the 20 weight maps, trained"),
        "seed000_gradients.png": plots.weight_maps(gradient.weights[0],
                                                   title="first layer: ∂C/∂w for each of the 20 neurons, untrained"),
    }
    written = []
    for name, png in figures.items():
        path = plots.save_png(png, out / name)
        print(f"  wrote {path}")
        written.append(str(path))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the pictures")
    parser.add_argument("--fast", action="store_true", help=f"train {FAST_EPOCHS} epochs instead of 40")
    args = parser.parse_args()
    run(args.out, fast=args.fast)


if __name__ == "__main__":
    main()
