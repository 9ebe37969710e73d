"""The worked example: a 3-2-2 sigmoid network with a mean-squared-error loss.

Run it with `python examples/seed_network.py`: it builds the model, differentiates it, evaluates
loss and gradients with graphc's reference interpreter and prints them beside the published
reference values (`../shared/reference/seed_network.json` when present, else the numbers below).
`graphc show examples/seed_network.py` prints the graph this file defines.
"""

from __future__ import annotations

import numpy as np

import graphc as gc


def build() -> gc.Graph:
    """The seed network (`graph` below is one built by this function)."""
    g = gc.Graph("seed_net")
    x = g.input("x", shape=("N", 3))
    y = g.input("y", shape=("N", 2))
    W1 = g.param("W1", shape=(2, 3))
    b1 = g.param("b1", shape=(2,))
    W2 = g.param("W2", shape=(2, 2))
    b2 = g.param("b2", shape=(1,))
    a1 = gc.sigmoid(x @ W1.T + b1)
    y_hat = gc.sigmoid(a1 @ W2.T + b2)
    g.output("loss", gc.mean((y_hat - y) ** 2))
    return g


graph = build()

INPUTS = {
    "x": np.array([[0.2, 0.1, 0.3]]),
    "y": np.array([[0.7, 0.3]]),
    "W1": np.array([[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]]),
    "b1": np.array([0.1, 0.2]),
    "W2": np.array([[0.2, 0.4], [0.3, 0.1]]),
    "b2": np.array([0.0]),
}

# Published values (hand-written float64 backpropagation, checked by finite differences).
REFERENCE = {
    "loss": 0.039472723187037456,
    "W1": [
        [0.0006711926962982497, 0.00033559634814912483, 0.0010067890444473745],
        [-0.0002075909339492904, -0.0001037954669746452, -0.0003113864009239356],
    ],
    "b1": [0.0033559634814912483, -0.0010379546697464519],
    "W2": [
        [-0.015426201779174028, -0.016462013339656734],
        [0.03657093566906815, 0.03902653676167348],
    ],
    "b2": [0.0368091380269939],
}


def main() -> int:
    dg = gc.grad(graph, of="loss")
    small = gc.simplify(dg)
    print(
        f"{graph.name}: {len(graph)} forward nodes; gradient graph {len(dg)} nodes, "
        f"{len(small)} after simplify"
    )
    outs, grads = gc.value_and_grad(graph, INPUTS, of="loss")
    worst = 0.0
    rows = [("loss", outs["loss"])] + list(grads.items())
    for name, got in rows:
        want = np.asarray(REFERENCE[name])
        err = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)))
        worst = max(worst, err)
        print(f"{name:>4} = {np.array2string(np.asarray(got), precision=6)}   rel err {err:.1e}")
    ok = worst < 1e-12
    print(f"{'OK' if ok else 'MISMATCH'}: max relative error against the reference {worst:.1e}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
