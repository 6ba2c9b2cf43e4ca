"""Small embedded data sets for the course — nothing is ever downloaded.

* :func:`load_digits` — scikit-learn's bundled 8×8 handwritten digits (1797 images, 10 classes,
  pixel intensities 0…16), split into stratified train/validation/test sets with a seed and
  standardized with statistics of the *training* split only (no leakage).
* :func:`augment_digits` — random small rotations and shifts of digit images (scipy.ndimage).
* :func:`make_spirals`, :func:`make_blobs` — 2-D toy classification sets for demos.

Features come back as floating arrays (``dtype``, default the package default) and labels as
int64 (``torch.long``) on the requested backend/device. Random draws come from
:class:`coursekit.backend.Generator`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _checks as check
from . import backend as B

__all__ = ["Digits", "load_digits", "augment_digits", "make_spirals", "make_blobs"]

IMAGE_SHAPE = (8, 8)


@dataclass(frozen=True)
class Digits:
    """The digits splits. ``X_*``: (N, 64) floating, ``y_*``: (N,) int64, on one backend/device.

    ``mean``, ``std``: (64,) float64 NumPy arrays, the per-pixel statistics of the raw training
    images used for standardization (``mean = 0``, ``std = 1`` when ``standardize=False``).
    Rows are in a random (seeded) order, so ``X_train[:n]`` is a random subset of the training set.
    """

    X_train: object
    y_train: object
    X_val: object
    y_val: object
    X_test: object
    y_test: object
    mean: np.ndarray
    std: np.ndarray

    def transform(self, X_raw):
        """Raw pixel intensities (N, 64) -> standardized ``(X_raw − mean) / std`` (same backend)."""
        return (X_raw - self._like(self.mean, X_raw)) / self._like(self.std, X_raw)

    def inverse_transform(self, X):
        """Standardized (N, 64) -> raw pixel intensities ``X · std + mean`` (same backend)."""
        return X * self._like(self.std, X) + self._like(self.mean, X)

    def images(self, X):
        """(N, 64) standardized rows -> (N, 8, 8) NumPy images of raw intensities (for plotting)."""
        return B.to_numpy(self.inverse_transform(X)).reshape(-1, *IMAGE_SHAPE)

    @staticmethod
    def _like(a, x):
        return B.asarray(a, backend=B.backend_of(x), device=B.device_of(x), dtype=B.dtype_name(x))


def load_digits(*, seed=0, val_size=0.2, test_size=0.2, standardize=True, std_floor=1.0, backend=None,
                device=None, dtype=None) -> Digits:
    """scikit-learn's 8×8 digits split into train/val/test, stratified by class, seeded.

    ``val_size``, ``test_size``: fractions of all 1797 samples in [0, 1), summing to < 1 (defaults:
    60/20/20 %). The test split is drawn first, then the validation split from the rest, both with
    ``sklearn.model_selection.train_test_split(stratify=y, random_state=seed)`` — each split keeps
    the class proportions. With ``standardize=True`` every pixel is standardized with the mean and
    (population) std of the *training* split only, floored at ``std_floor`` intensity levels (of
    16): a border pixel that is almost always blank in training (std 0.03 with seed 0) carries
    no signal there, and dividing by its tiny std would turn one rare stroke in a validation or
    test image into a value near 200 (validation pixel variance 2.7 against 0.9 in training,
    without the floor; 0.82 against 0.81 with the default floor of 1). ``std_floor=0`` gives
    plain standardization (pixels constant in training are then only centred). Returns a
    :class:`Digits`.
    """
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    fn = "load_digits"
    val_size = check.real(fn, "val_size", val_size, low=0.0, high=1.0, high_open=True)
    test_size = check.real(fn, "test_size", test_size, low=0.0, high=1.0, high_open=True)
    if val_size + test_size >= 1:
        raise ValueError(f"{fn}: val_size + test_size must be < 1, got {val_size} + {test_size}")
    seed = check.integer(fn, "seed", seed, low=0)
    std_floor = check.real(fn, "std_floor", std_floor, low=0.0)
    backend, device, dtype = B._resolve(backend, device, dtype, fn)

    bunch = _sk_load_digits()
    X, y = bunch.data.astype(np.float64), bunch.target.astype(np.int64)
    empty = (X[:0], y[:0])
    if test_size > 0:
        X, X_te, y, y_te = train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)
    else:
        X_te, y_te = empty
    if val_size > 0:
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=val_size / (1.0 - test_size),
                                                  stratify=y, random_state=seed)
    else:
        # train_test_split already shuffled the rows when a test split was drawn
        order = B.Generator(seed, backend="numpy").permutation(len(y)) if test_size == 0 else np.arange(len(y))
        X_tr, y_tr, (X_va, y_va) = X[order], y[order], empty

    if standardize:
        mean = X_tr.mean(axis=0)
        std = X_tr.std(axis=0)
        std = np.maximum(std, float(std_floor))
        std = np.where(std > 0, std, 1.0)
    else:
        mean, std = np.zeros(X.shape[1]), np.ones(X.shape[1])

    def feats(a):
        return B.asarray((a - mean) / std, backend=backend, device=device, dtype=dtype)

    def labels(a):
        return B.asarray_int64(a, backend=backend, device=device)

    return Digits(feats(X_tr), labels(y_tr), feats(X_va), labels(y_va), feats(X_te), labels(y_te),
                  mean=mean, std=std)


def augment_digits(images_or_X, *, max_shift=1, max_rotation=15.0, generator=None, fill=0.0):
    """Randomly rotate and shift digit images: a new, label-preserving version of every row.

    ``images_or_X``: (N, 8, 8) images or (N, 64) rows of *raw* pixel intensities (background 0;
    for standardized data use ``Digits.inverse_transform`` first and ``Digits.transform`` after).
    Image i is rotated about its centre by an angle drawn from U[−max_rotation, max_rotation]
    degrees (bilinear, ``scipy.ndimage.rotate``, same 8×8 frame) and then shifted by whole pixels
    (dy, dx), each drawn uniformly from {−max_shift, …, max_shift}; pixels entering the frame are
    ``fill``. Row i of the output is the augmented row i, so the labels ``y`` stay valid.
    Returns an array of the input's shape, dtype, backend and device; draws come from ``generator``
    (a :class:`coursekit.backend.Generator` on the input's backend/device; default: its default one).
    """
    from scipy import ndimage

    fn = "augment_digits"
    check.floating(fn, "images_or_X", images_or_X)
    shape = tuple(images_or_X.shape)
    if not (len(shape) == 2 and shape[1] == 64) and not (len(shape) == 3 and shape[1:] == IMAGE_SHAPE):
        raise ValueError(f"{fn}: images_or_X must have shape (N, 64) or (N, 8, 8), got {shape}")
    max_shift = check.integer(fn, "max_shift", max_shift, low=0, high=7)                 # pixels
    max_rotation = check.real(fn, "max_rotation", max_rotation, low=0.0, high=180.0)    # degrees
    g = B.generator_like(images_or_X, generator, fn=fn)

    n = shape[0]
    angles = B.to_numpy(g.uniform((n,), -float(max_rotation), float(max_rotation), dtype="float64"))
    shifts = g.integers(-max_shift, max_shift + 1, (n, 2))
    imgs = B.to_numpy(images_or_X).astype(np.float64).reshape(n, *IMAGE_SHAPE)
    out = np.empty_like(imgs)
    for i in range(n):
        img = imgs[i]
        if angles[i] != 0.0:
            img = ndimage.rotate(img, angles[i], reshape=False, order=1, mode="constant", cval=fill)
        if shifts[i].any():
            img = ndimage.shift(img, shifts[i], order=0, mode="constant", cval=fill)
        out[i] = img
    return B.asarray(out.reshape(shape), backend=B.backend_of(images_or_X),
                     device=B.device_of(images_or_X), dtype=B.dtype_name(images_or_X))


def _finish(fn, X, y, backend, device, dtype):
    backend, device, dtype = B._resolve(backend, device, dtype, fn)
    return (B.asarray(X, backend=backend, device=device, dtype=dtype),
            B.asarray_int64(y, backend=backend, device=device))


def make_spirals(n_per_class=100, n_classes=3, *, noise=0.2, seed=0, backend=None, device=None, dtype=None):
    """Interleaved 2-D spirals (the CS231n toy set): not linearly separable, easy for an MLP.

    Class k's points are ``r·(sin t, cos t)`` with radius r evenly spaced in [0, 1] and angle
    ``t = 4k + 4r + noise·N(0, 1)`` (radians). Returns ``(X (n_classes·n_per_class, 2), y int64)``.
    """
    fn = "make_spirals"
    n_per_class = check.integer(fn, "n_per_class", n_per_class, low=1)
    n_classes = check.integer(fn, "n_classes", n_classes, low=1)
    noise = check.real(fn, "noise", noise, low=0.0)
    g = B.Generator(check.integer(fn, "seed", seed, low=0), backend="numpy")
    r = np.tile(np.linspace(0.0, 1.0, n_per_class), n_classes)
    k = np.repeat(np.arange(n_classes), n_per_class)
    t = 4.0 * k + 4.0 * r + noise * g.normal((n_classes * n_per_class,), dtype="float64")
    X = np.stack([r * np.sin(t), r * np.cos(t)], axis=1)
    return _finish(fn, X, k, backend, device, dtype)


def make_blobs(n_per_class=100, n_classes=3, *, n_features=2, cluster_std=1.0, center_box=(-5.0, 5.0),
               seed=0, backend=None, device=None, dtype=None):
    """Gaussian classes: class k is ``N(c_k, cluster_std² I)`` with centres ``c_k`` drawn uniformly
    in ``center_box`` per coordinate (as ``sklearn.datasets.make_blobs``).

    Returns ``(X (n_classes·n_per_class, n_features), y int64)``, rows grouped by class.
    """
    fn = "make_blobs"
    n_per_class = check.integer(fn, "n_per_class", n_per_class, low=1)
    n_classes = check.integer(fn, "n_classes", n_classes, low=1)
    n_features = check.integer(fn, "n_features", n_features, low=1)
    cluster_std = check.real(fn, "cluster_std", cluster_std, low=0.0, low_open=True)
    lo, hi = (check.real(fn, "center_box", v) for v in center_box)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{fn}: center_box must be (low, high) with low < high, got {center_box!r}")
    g = B.Generator(check.integer(fn, "seed", seed, low=0), backend="numpy")
    centers = g.uniform((n_classes, n_features), lo, hi, dtype="float64")
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = centers[y] + cluster_std * g.normal((len(y), n_features), dtype="float64")
    return _finish(fn, X, y, backend, device, dtype)
