"""Lecture 03 exercises — the thin linear network of a maxout network, and a fair parameter count.

References: :func:`coursekit.functional.maxout_backward` (which piece receives the gradient, i.e. which piece
wins) and :class:`coursekit.nn.Maxout` / :class:`coursekit.nn.Linear` (their parameters).
"""
from __future__ import annotations

import numpy as np

from coursekit import functional as F
from coursekit import nn
from coursekit.backend import Generator
from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- thin linear network


def _selection(z, pieces):
    """(units, units·pieces) 0/1 matrix: row j picks unit j's winning piece (maxout_backward of e_j)."""
    units = z.shape[-1] // pieces
    return F.maxout_backward(np.eye(units), np.broadcast_to(z, (units, z.shape[-1])), pieces)


def thin_linear_network(x, W1, b1, W2, b2, pieces):
    """Reference: (W, b) of the linear map made of the winning rows of both maxout layers at input x."""
    S1 = _selection(W1 @ x + b1, pieces)
    h = S1 @ (W1 @ x + b1)
    S2 = _selection(W2 @ h + b2, pieces)
    W1s, b1s, W2s, b2s = S1 @ W1, S1 @ b1, S2 @ W2, S2 @ b2
    return W2s @ W1s, W2s @ b1s + b2s


def _winners(z, pieces):
    return np.arange(z.shape[0] // pieces) * pieces + z.reshape(-1, pieces).argmax(-1)


def _thin(x, W1, b1, W2, b2, pieces, pick=_winners, bias="full", order="right"):
    r1 = pick(W1 @ x + b1, pieces)
    h = (W1 @ x + b1)[r1]
    r2 = pick(W2 @ h + b2, pieces)
    W1s, b1s, W2s, b2s = W1[r1], b1[r1], W2[r2], b2[r2]
    W = W2s @ W1s if order == "right" else W1s.T @ W2s.T
    b = W2s @ b1s + b2s if bias == "full" else b2s
    return W, b


def _thin_first_piece(x, W1, b1, W2, b2, pieces):
    return _thin(x, W1, b1, W2, b2, pieces, pick=lambda z, k: np.arange(z.shape[0] // k) * k)


def _thin_bias_dropped(x, W1, b1, W2, b2, pieces):
    return _thin(x, W1, b1, W2, b2, pieces, bias="last")


def _thin_transposed(x, W1, b1, W2, b2, pieces):
    return _thin(x, W1, b1, W2, b2, pieces, order="transposed")


def _thin_inputs(d, h, o, k):
    def draw(rng):
        return dict(x=rng.normal(size=d), W1=rng.normal(size=(h * k, d)), b1=rng.normal(size=h * k),
                    W2=rng.normal(size=(o * k, h)), b2=rng.normal(size=o * k), pieces=k)
    return draw


THIN = Question(
    id="lec03.thin_linear_network", function="thin_linear_network", title="The thin linear network of one input",
    reference=thin_linear_network, outputs=("W", "b"),
    cases=(
        Case("2 pieces, 5 inputs, 4 hidden units, 3 outputs", _thin_inputs(5, 4, 3, 2)),
        Case("3 pieces, 6 inputs, 5 hidden units, 2 outputs", _thin_inputs(6, 5, 2, 3)),
        Case("4 pieces, larger layers", _thin_inputs(9, 7, 4, 4), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("thin-first-piece",
                      "The rows are always the first piece of each unit; take the piece that wins (the largest "
                      "z) at this input.", _thin_first_piece),
        Misconception("thin-bias-not-propagated",
                      "The bias is only the second layer's; the first layer's bias also passes through the second "
                      "layer's winning weights (b = W2' b1' + b2').", _thin_bias_dropped),
        Misconception("thin-transposed",
                      "W has the shape (outputs, inputs), like a Linear weight: compose as W2' @ W1'.",
                      _thin_transposed),
    ),
)

# ----------------------------------------------------------------------------- parameter count


def count_parameters(n_in, hidden, n_out, pieces):
    """Reference: parameters of Maxout(n_in, hidden, pieces) followed by Linear(hidden, n_out)."""
    gen = Generator(0, backend="numpy")
    net = nn.Sequential(nn.Maxout(n_in, hidden, pieces, generator=gen), nn.Linear(hidden, n_out, generator=gen))
    return int(sum(int(np.prod(p.shape)) for p in net.parameters()))


def _count_ignores_pieces(n_in, hidden, n_out, pieces):
    return n_in * hidden + hidden + hidden * n_out + n_out


def _count_bias_per_unit(n_in, hidden, n_out, pieces):
    return n_in * hidden * pieces + hidden + hidden * n_out + n_out


def _count_pieces_on_output(n_in, hidden, n_out, pieces):
    return (n_in + 1) * hidden * pieces + hidden * pieces * n_out + n_out


def _count_no_biases(n_in, hidden, n_out, pieces):
    return n_in * hidden * pieces + hidden * n_out


def _count_inputs(n_in, hidden, n_out, pieces):
    return lambda rng: dict(n_in=n_in, hidden=hidden, n_out=n_out, pieces=pieces)


def _count_hidden(rng):
    return dict(n_in=int(rng.integers(10, 100)), hidden=int(rng.integers(5, 50)), n_out=int(rng.integers(2, 20)),
                pieces=int(rng.integers(2, 6)))


COUNT = Question(
    id="lec03.count_parameters", function="count_parameters", title="Parameters of a maxout network",
    reference=count_parameters, outputs=("count",),
    cases=(
        Case("the lecture's network", _count_inputs(64, 34, 10, 2)),
        Case("3 pieces", _count_inputs(20, 8, 5, 3)),
        Case("random sizes", _count_hidden, points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("count-ignores-pieces",
                      "This counts a ReLU network of the same width; every maxout unit has `pieces` weight "
                      "vectors and biases.", _count_ignores_pieces),
        Misconception("count-one-bias-per-unit", "Every piece has its own bias, not every unit.",
                      _count_bias_per_unit),
        Misconception("count-pieces-on-output",
                      "The output layer sees one value per maxout unit (the max), not one per piece.",
                      _count_pieces_on_output),
        Misconception("count-no-biases", "The biases are parameters too.", _count_no_biases),
    ),
)

LAB = Lab(id="lec03", title="Lecture 3 exercises: maxout", notebook="03_maxout.ipynb", folder="lectures",
          questions=(THIN, COUNT), timeout_s=20.0)
