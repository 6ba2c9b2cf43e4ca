"""Lecture 13's new claims fail when their idea is broken (inside coursekit, or in the experiment's design)."""
import claims
from claims import assert_claim_fails
from coursekit import optim

LECTURE = "13_methodology"


def _substitute(monkeypatch, old, new):
    """Run the claim with one line of the notebook changed (for ideas that live in the experiment itself)."""
    claim_cells = claims.claim_cells

    def cells(name, claim, needs=()):
        out = claim_cells(name, claim, needs)
        assert any(old in src for _, src in out), old
        return [(section, src.replace(old, new)) for section, src in out]

    monkeypatch.setattr(claims, "claim_cells", cells)


def test_c2_loss_goes_up_only_if_the_penalty_is_in_the_objective(monkeypatch):
    monkeypatch.setattr(optim, "penalty", lambda params, **kw: 0.0)
    assert_claim_fails(LECTURE, "C2", needs=("C1",))


def test_c4_random_search_needs_low_effective_dimension(monkeypatch):
    _substitute(monkeypatch, "CURVATURE = (1.0, 0.001)", "CURVATURE = (1.0, 1.0)")
    assert_claim_fails(LECTURE, "C4")


def test_c5_coarse_to_fine_needs_the_zoom(monkeypatch):
    _substitute(monkeypatch, "ZOOM = 0.25 ", "ZOOM = 1.0 ")
    assert_claim_fails(LECTURE, "C5", needs=("C4",))


def test_c7_filters_need_training(monkeypatch):
    monkeypatch.setattr(optim, "_sgd", lambda params, grads, bufs, *a: (list(params), list(bufs)))
    assert_claim_fails(LECTURE, "C7")
