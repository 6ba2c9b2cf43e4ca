"""Lecture 01's new claims fail when their idea is broken (see tests/claims.py)."""
from claims import assert_claim_fails
from coursekit import backend as B
from coursekit import functional as F

LECTURE = "01_recipe"


def test_c5_backends_disagree_when_a_kernel_differs_on_torch(monkeypatch):
    """C5 (the same model on torch matches NumPy): let ReLU leak on torch tensors only -> the runs differ."""
    relu = F.relu

    def relu_leaky_on_torch(x):
        if B.backend_of(x) == "torch":
            return relu(x) + 0.05 * (x - relu(x))
        return relu(x)

    monkeypatch.setattr(F, "relu", relu_leaky_on_torch)
    err = assert_claim_fails(LECTURE, "C5")
    assert err.args[0] > 1e-4                     # the first assert of C5: the relative difference of the logits
