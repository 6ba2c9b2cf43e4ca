"""Lecture 01 exercises — model selection on the validation set, and the sampling error of an accuracy.

There is no coursekit kernel to wrap here: the references are the lecture's two formulas (arg-max of the
validation accuracy; the standard error of a difference of two independent accuracies).
"""
from __future__ import annotations

import numpy as np

from coursekit.labs.spec import Case, Lab, Misconception, Question

# ----------------------------------------------------------------------------- select and report


def select_and_report(train_acc, val_acc, test_acc):
    """Reference: index of the best validation accuracy (the first, on ties) and that model's test accuracy."""
    i = int(np.argmax(val_acc))
    return i, float(test_acc[i])


def _mistake(choose, report):
    """A mistaken protocol: select by ``choose``'s accuracy; report ``report``'s accuracy of the selected model
    (``"best test"``: the best test accuracy of all models)."""
    def variant(train_acc, val_acc, test_acc):
        acc = {"train": train_acc, "validation": val_acc, "test": test_acc}
        i = int(np.argmax(acc[choose]))
        return i, float(np.max(test_acc) if report == "best test" else acc[report][i])
    return variant


def _select_inputs(n, fitted=0):
    """n models; ``fitted`` of the larger ones reach training accuracy 1.0 (ties, as in the lecture's C1)."""
    def draw(rng):
        while True:
            val = rng.uniform(0.6, 0.95, size=n)
            test = np.clip(val + rng.normal(scale=0.04, size=n), 0.0, 1.0)
            train = np.minimum(val + rng.uniform(0.0, 0.1, size=n), 1.0)
            if fitted:
                train[-fitted:] = 1.0
            picks = {int(np.argmax(val)), int(np.argmax(test)), int(np.argmax(train))}
            if len(picks) == 3:                     # the three ways of selecting disagree
                return dict(train_acc=train, val_acc=val, test_acc=test)
    return draw


SELECT = Question(
    id="lec01.select_and_report", function="select_and_report", title="Select on validation, report test",
    reference=select_and_report, outputs=("selected", "reported_accuracy"),
    cases=(
        Case("six models", _select_inputs(6)),
        Case("eight widths, the largest three fit the training set", _select_inputs(8, fitted=3)),
        Case("many models", _select_inputs(20, fitted=5), points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("select-on-test",
                      "The model is chosen by its test accuracy: then the test set took part in a decision and its "
                      "accuracy is an optimistic, selected number. Choose on the validation set.",
                      _mistake("test", "test")),
        Misconception("select-on-train",
                      "The model is chosen by its training accuracy, which rewards memorisation (and ties at 100 % "
                      "for every large enough model).", _mistake("train", "test")),
        Misconception("report-validation",
                      "The reported number is the validation accuracy of the selected model; it was used for the "
                      "choice, so it is biased upwards. Report the selected model's test accuracy.",
                      _mistake("validation", "validation")),
        Misconception("report-best-test",
                      "The reported number is the best test accuracy of all models, not the test accuracy of the "
                      "model you selected.", _mistake("validation", "best test")),
    ),
)

# ----------------------------------------------------------------------------- sampling error


def difference_sigma(acc, n_val, n_test):
    """Reference: sqrt(a (1 − a) (1/n_val + 1/n_test)), the standard error of (test − validation) accuracy."""
    acc = np.asarray(acc, dtype=float)
    return np.sqrt(acc * (1.0 - acc) * (1.0 / n_val + 1.0 / n_test))


def _sigma_one_split(acc, n_val, n_test):
    return np.sqrt(acc * (1.0 - acc) / n_test)


def _sigma_variance(acc, n_val, n_test):
    return acc * (1.0 - acc) * (1.0 / n_val + 1.0 / n_test)


def _sigma_sum_of_errors(acc, n_val, n_test):
    return np.sqrt(acc * (1.0 - acc) / n_val) + np.sqrt(acc * (1.0 - acc) / n_test)


def _sigma_pooled_n(acc, n_val, n_test):
    return np.sqrt(acc * (1.0 - acc) / (n_val + n_test))


def _sigma_inputs(size, n_val, n_test):
    return lambda rng: dict(acc=rng.uniform(0.5, 0.99, size=size), n_val=n_val, n_test=n_test)


def _sigma_hidden(rng):
    return dict(acc=rng.uniform(0.3, 0.999, size=7), n_val=int(rng.integers(50, 2000)),
                n_test=int(rng.integers(50, 2000)))


SIGMA = Question(
    id="lec01.difference_sigma", function="difference_sigma", title="Sampling error of test minus validation",
    reference=difference_sigma, outputs=("sigma",),
    cases=(
        Case("the lecture's split sizes", _sigma_inputs(5, 360, 360)),
        Case("unequal splits", _sigma_inputs(4, 200, 1000)),
        Case("random sizes", _sigma_hidden, points=2.0, visibility="hidden"),
    ),
    misconceptions=(
        Misconception("sigma-one-split",
                      "Only the test set's sampling error is counted; the validation accuracy is a noisy estimate "
                      "too, and the variances of independent estimates add.", _sigma_one_split),
        Misconception("sigma-variance-not-sd", "This is the variance; the standard error is its square root.",
                      _sigma_variance),
        Misconception("sigma-errors-added",
                      "Standard errors do not add; variances of independent estimates do (then take the root).",
                      _sigma_sum_of_errors),
        Misconception("sigma-pooled-n",
                      "Pooling both sets into one n estimates the error of an average over both sets, not of the "
                      "difference between them.", _sigma_pooled_n),
    ),
)

LAB = Lab(id="lec01", title="Lecture 1 exercises: model selection", notebook="01_recipe.ipynb", folder="lectures",
          questions=(SELECT, SIGMA), timeout_s=20.0)
