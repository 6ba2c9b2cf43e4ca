"""coursekit.data: embedded digits (splits, stratification, no leakage), augmentation, toy sets."""
import numpy as np
import pytest
from sklearn.datasets import load_digits as sk_digits

from coursekit import backend as B
from coursekit import data


@pytest.fixture(scope="module")
def raw():
    d = sk_digits()
    return d.data, d.target


def test_shapes_dtypes_and_placement(backend):
    name, device = backend
    d = data.load_digits(seed=0, backend=name, device=device)
    sizes = [d.X_train.shape[0], d.X_val.shape[0], d.X_test.shape[0]]
    assert sum(sizes) == 1797 and sizes[1] == sizes[2] == 360
    for X, y in [(d.X_train, d.y_train), (d.X_val, d.y_val), (d.X_test, d.y_test)]:
        assert X.shape[1] == 64 and y.shape == (X.shape[0],)
        assert B.dtype_name(X) == "float32" and B.dtype_name(y) == "int64"
        assert B.backend_of(X) == B.backend_of(y) == name and B.device_of(X).startswith(device)
    d64 = data.load_digits(backend=name, device=device, dtype="float64")
    assert B.dtype_name(d64.X_train) == "float64"


def test_splits_are_a_stratified_partition(raw):
    X, y = raw
    d = data.load_digits(seed=3, standardize=False, val_size=0.25, test_size=0.15)
    parts = [(d.X_train, d.y_train), (d.X_val, d.y_val), (d.X_test, d.y_test)]
    # a partition: the union of the splits is exactly the data set (as a multiset of rows + labels)
    allrows = np.concatenate([np.column_stack([Xs, ys]) for Xs, ys in parts])
    ref = np.column_stack([X, y])
    np.testing.assert_array_equal(allrows[np.lexsort(allrows.T)], ref[np.lexsort(ref.T)])
    # stratified: each split's class counts are its size × the class frequency, up to rounding
    freq = np.bincount(y) / len(y)
    for _, ys in parts:
        counts = np.bincount(ys, minlength=10)
        assert np.abs(counts - freq * len(ys)).max() <= 2.0


def test_standardization_uses_train_statistics_only(raw):
    X, _ = raw
    d = data.load_digits(seed=1, dtype="float64")
    raw_train = d.inverse_transform(d.X_train)
    np.testing.assert_allclose(d.mean, raw_train.mean(0), atol=1e-12)
    sd = raw_train.std(0)
    np.testing.assert_allclose(d.std, np.maximum(sd, 1.0), rtol=1e-12)   # default std_floor=1
    assert np.abs(d.X_train.mean(0)).max() < 1e-10
    np.testing.assert_allclose(d.X_train.std(0)[sd >= 1], 1.0, rtol=1e-10)
    assert (d.X_train.std(0)[sd < 1] < 1).all()             # nearly blank pixels are not blown up
    plain = data.load_digits(seed=1, dtype="float64", std_floor=0)
    np.testing.assert_allclose(plain.std, np.where(sd > 0, sd, 1.0), rtol=1e-12)
    np.testing.assert_allclose(plain.X_train.std(0)[sd > 0], 1.0, rtol=1e-10)
    # the floor keeps held-out pixels on the training scale (without it a rare stroke on a
    # nearly blank border pixel becomes an outlier of ~100 standard units)
    # (seed 0: a border pixel with training std 0.03 gives a validation value of 186 without it)
    d0, plain0 = data.load_digits(seed=0, dtype="float64"), data.load_digits(seed=0, dtype="float64", std_floor=0)
    assert np.abs(d0.X_val).max() < 20 < 100 < np.abs(plain0.X_val).max()
    # statistics of the whole data set would differ (so they were not used)
    assert np.abs(d.mean - X.mean(0)).max() > 1e-3
    # held-out splits are transformed with the train statistics, not their own
    assert np.abs(d.X_val.mean(0)).max() > 1e-3
    np.testing.assert_allclose(d.transform(d.inverse_transform(d.X_val)), d.X_val, atol=1e-12)
    assert d.images(d.X_test[:5]).shape == (5, 8, 8)
    assert d.images(d.X_test).min() >= -1e-9 and d.images(d.X_test).max() <= 16 + 1e-9


def test_std_floor_validated():
    with pytest.raises(ValueError, match="load_digits: std_floor"):
        data.load_digits(std_floor=-1.0)


def test_deterministic_per_seed():
    a, b, c = data.load_digits(seed=5), data.load_digits(seed=5), data.load_digits(seed=6)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.y_train, c.y_train)


def test_empty_validation_split():
    d = data.load_digits(val_size=0.0, test_size=0.0)
    assert d.X_train.shape == (1797, 64) and d.X_val.shape == (0, 64) and d.y_test.shape == (0,)


def test_augmentation_preserves_shape_dtype_backend(backend):
    name, device = backend
    d = data.load_digits(seed=0, standardize=False, backend=name, device=device)
    X = d.X_train[:50]
    g = B.Generator(0, backend=name, device=device)
    A = data.augment_digits(X, generator=g)
    assert tuple(A.shape) == tuple(X.shape) and B.dtype_name(A) == B.dtype_name(X)
    assert B.backend_of(A) == name and B.device_of(A) == B.device_of(X)
    a = B.to_numpy(A)
    assert a.min() >= -1e-5 and a.max() <= 16 + 1e-5           # bilinear interpolation with zero fill
    assert (np.abs(a - B.to_numpy(X)).max(1) > 0).mean() > 0.8  # nearly every image changed
    # same generator seed -> same augmentation; images form works too
    A2 = data.augment_digits(X, generator=B.Generator(0, backend=name, device=device))
    np.testing.assert_array_equal(B.to_numpy(A2), a)
    imgs = data.augment_digits(B.asarray(B.to_numpy(X).reshape(-1, 8, 8), backend=name, device=device),
                               generator=B.Generator(0, backend=name, device=device))
    assert tuple(imgs.shape) == (50, 8, 8)


def test_augmentation_limits():
    d = data.load_digits(seed=0, standardize=False, dtype="float64")
    X = d.X_train[:40]
    same = data.augment_digits(X, max_shift=0, max_rotation=0, generator=B.Generator(1, backend="numpy"))
    np.testing.assert_array_equal(same, X)
    shifted = data.augment_digits(X, max_shift=1, max_rotation=0, generator=B.Generator(2, backend="numpy"))
    imgs, out = X.reshape(-1, 8, 8), shifted.reshape(-1, 8, 8)
    for im, o in zip(imgs, out):  # every output is one of the 9 integer shifts of its input (zero fill)
        cands = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                s = np.zeros_like(im)
                s[max(dy, 0):8 + min(dy, 0), max(dx, 0):8 + min(dx, 0)] = im[max(-dy, 0):8 - max(dy, 0),
                                                                              max(-dx, 0):8 - max(dx, 0)]
                cands.append(s)
        assert any(np.array_equal(o, c) for c in cands)


def test_toy_sets(backend):
    name, device = backend
    X, y = data.make_spirals(50, 3, seed=1, backend=name, device=device)
    assert tuple(X.shape) == (150, 2) and B.dtype_name(y) == "int64"
    np.testing.assert_array_equal(np.bincount(B.to_numpy(y)), [50, 50, 50])
    assert np.abs(B.to_numpy(X)).max() <= 1.0 + 1e-6
    X2, _ = data.make_spirals(50, 3, seed=1, backend=name, device=device)
    np.testing.assert_array_equal(B.to_numpy(X), B.to_numpy(X2))
    Xb, yb = data.make_blobs(40, 4, n_features=3, cluster_std=0.1, seed=0, backend=name, device=device)
    assert tuple(Xb.shape) == (160, 3)
    xb, ybn = B.to_numpy(Xb), B.to_numpy(yb)
    # tight clusters: each point is nearest to its own class mean
    means = np.stack([xb[ybn == k].mean(0) for k in range(4)])
    assert (np.argmin(((xb[:, None] - means[None]) ** 2).sum(-1), 1) == ybn).all()


@pytest.mark.parametrize("call,exc,match", [
    (lambda: data.load_digits(val_size=0.6, test_size=0.5), ValueError, r"load_digits: val_size \+ test_size must be < 1"),
    (lambda: data.load_digits(test_size=-0.1), ValueError, r"load_digits: test_size must be in \[0, 1\), got -0.1"),
    (lambda: data.load_digits(val_size="a"), TypeError, r"load_digits: val_size must be a real number"),
    (lambda: data.load_digits(backend="jax"), ValueError, r"load_digits: backend must be one of"),
    (lambda: data.augment_digits(np.zeros((3, 10))), ValueError, r"augment_digits: images_or_X must have shape \(N, 64\) or \(N, 8, 8\)"),
    (lambda: data.augment_digits(np.zeros((3, 64)), max_shift=8), ValueError, r"augment_digits: max_shift must be an integer in \[0, 7\]"),
    (lambda: data.augment_digits(np.zeros((3, 64)), max_rotation=-5), ValueError, r"augment_digits: max_rotation must be in"),
    (lambda: data.augment_digits(np.zeros((3, 64), dtype=np.int64)), TypeError, r"augment_digits: images_or_X must have a floating"),
    (lambda: data.make_spirals(0), ValueError, r"make_spirals: n_per_class must be an integer >= 1, got 0"),
    (lambda: data.make_blobs(10, cluster_std=0), ValueError, r"make_blobs: cluster_std must be in \(0, inf\], got 0.0"),
    # a wrong type is a TypeError (these were ValueErrors before the checks were shared)
    (lambda: data.make_blobs(10, cluster_std="1"), TypeError, r"make_blobs: cluster_std must be a real number, got str"),
    (lambda: data.make_spirals(10, noise=None), TypeError, r"make_spirals: noise must be a real number, got NoneType"),
    (lambda: data.load_digits(std_floor="1"), TypeError, r"load_digits: std_floor must be a real number, got str"),
    (lambda: data.augment_digits(np.zeros((3, 64)), max_rotation="5"), TypeError, r"augment_digits: max_rotation must be a real"),
    (lambda: data.make_blobs(10, center_box=(0, "5")), TypeError, r"make_blobs: center_box must be a real number"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
