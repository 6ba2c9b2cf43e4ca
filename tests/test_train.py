"""coursekit.train: fit/evaluate/accuracy on the embedded digits, schedules and early stopping in a run."""
import math

import numpy as np
import pytest

from coursekit import backend as B
from coursekit import data, nn, optim, train


@pytest.fixture
def digits(backend):
    name, device = backend
    return data.load_digits(seed=0, backend=name, device=device)


def _mlp(backend, seed=0, hidden=64):
    name, device = backend
    g = B.Generator(seed, backend=name, device=device)
    kw = dict(backend=name, device=device, generator=g)
    return nn.Sequential(nn.Linear(64, hidden, **kw), nn.ReLU(), nn.Linear(hidden, 10, **kw))


def test_small_mlp_learns_digits_quickly(backend, digits):
    name, device = backend
    model = _mlp(backend)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    h = train.fit(model, nn.CrossEntropyLoss(), opt, digits.X_train, digits.y_train, epochs=4, batch_size=32,
                  X_val=digits.X_val, y_val=digits.y_val, generator=B.Generator(1, backend=name, device=device),
                  progress=False)
    assert h.epochs == 4 and len(h.val_acc) == len(h.lr) == len(h.update_ratio) == 4
    assert h.val_acc[-1] > 0.90 and h.train_acc[-1] > 0.90
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.lr == [0.05] * 4
    assert all(1e-5 < r < 1.0 for r in h.update_ratio)
    loss, acc = train.evaluate(model, digits.X_val, digits.y_val)
    assert loss == pytest.approx(h.val_loss[-1], rel=1e-5) and acc == pytest.approx(h.val_acc[-1])
    assert h.best_epoch is None and not h.stopped_early


def test_fit_is_deterministic_given_seeds(backend, digits):
    name, device = backend
    runs = []
    for _ in range(2):
        model = _mlp(backend, seed=3, hidden=16)
        opt = optim.SGD(model.parameters(), lr=0.1)
        runs.append(train.fit(model, nn.CrossEntropyLoss(), opt, digits.X_train[:300], digits.y_train[:300],
                              epochs=2, batch_size=50, generator=B.Generator(4, backend=name, device=device),
                              progress=False).train_loss)
    assert runs[0] == runs[1]


def test_accuracy_and_evaluate_on_known_values(make):
    logits = make(np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.5, 0.1, 0.9], [1.0, 0.0, 0.0]]))
    y = make(np.array([0, 1, 0, 2]))
    assert train.accuracy(logits, y) == 0.5

    class Fixed(nn.Module):
        def forward(self, x):
            return x

    m = Fixed()
    m.train()
    loss, acc = train.evaluate(m, logits, y, batch_size=3)  # two batches, weighted by size
    z = B.to_numpy(logits)
    ref = np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(4), [0, 1, 0, 2]])
    assert loss == pytest.approx(ref, rel=1e-6) and acc == 0.5
    assert m.training  # mode restored


def test_inverse_sqrt_schedule_in_a_run(backend, digits):
    model = _mlp(backend, hidden=8)
    opt = optim.SGD(model.parameters(), lr=0.2)
    h = train.fit(model, nn.CrossEntropyLoss(), opt, digits.X_train[:200], digits.y_train[:200], epochs=4,
                  batch_size=100, scheduler=optim.InverseSqrtLR(opt), progress=False)
    np.testing.assert_allclose(h.lr, [0.2 / math.sqrt(t + 1) for t in range(4)], rtol=1e-15)


def test_plateau_halves_lr_in_a_run(backend, digits):
    model = _mlp(backend, hidden=8)
    opt = optim.SGD(model.parameters(), lr=1e-12)  # no progress: the loss stays flat (a plateau)
    h = train.fit(model, nn.CrossEntropyLoss(), opt, digits.X_train[:200], digits.y_train[:200], epochs=5,
                  batch_size=200, scheduler=optim.ReduceLROnPlateau(opt, patience=1, eps=0.0), progress=False)
    # epoch 0 sets the best; epochs 1, 2 are bad; > patience bad epochs -> halve after epoch 2
    # (eps=0: torch skips lr changes smaller than eps, default 1e-8)
    assert h.lr == [1e-12, 1e-12, 1e-12, 5e-13, 5e-13]


def test_early_stopping_restores_the_best_val_epoch(backend, digits):
    name, device = backend
    model = _mlp(backend, hidden=64)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)  # aggressive: val loss turns up quickly
    es = optim.EarlyStopping(patience=2)
    h = train.fit(model, nn.CrossEntropyLoss(), opt, digits.X_train, digits.y_train, epochs=40, batch_size=32,
                  X_val=digits.X_val, y_val=digits.y_val, early_stopping=es,
                  generator=B.Generator(0, backend=name, device=device), progress=False)
    assert h.stopped_early and h.epochs < 40
    assert h.best_epoch == int(np.argmin(h.val_loss)) == h.epochs - 1 - 2
    loss, _ = train.evaluate(model, digits.X_val, digits.y_val)
    assert loss == pytest.approx(h.val_loss[h.best_epoch], rel=1e-5)


def test_regression_targets_give_nan_accuracy(backend, digits):
    name, device = backend
    g = B.Generator(0, backend=name, device=device)
    ae = nn.Sequential(nn.Linear(64, 16, backend=name, device=device, generator=g), nn.Tanh(),
                       nn.Linear(16, 64, backend=name, device=device, generator=g))
    X = digits.X_train[:300]
    h = train.fit(ae, nn.MSELoss(), optim.SGD(ae.parameters(), lr=0.05, momentum=0.9), X, X, epochs=5,
                  batch_size=30, generator=g, progress=False)
    assert all(math.isnan(a) for a in h.train_acc) and h.train_loss[-1] < 0.8 * h.train_loss[0]


@pytest.mark.parametrize("kw,exc,match", [
    (dict(epochs=0), ValueError, r"fit: epochs must be an integer >= 1, got 0"),
    (dict(batch_size=0), ValueError, r"fit: batch_size must be an integer >= 1, got 0"),
    (dict(epochs=1.5), TypeError, r"fit: epochs must be an integer"),
    (dict(X_val="set"), ValueError, r"fit: X_val and y_val must be given together"),
    (dict(monitor="acc"), ValueError, r"fit: monitor must be one of"),
    (dict(early_stopping=optim.EarlyStopping(), monitor="val_loss"), ValueError, r"fit: monitor='val_loss' needs X_val"),
    (dict(y=np.zeros(5, dtype=np.int64)), ValueError, r"fit: X and y must have the same number of rows"),
    (dict(y=[0, 1]), TypeError, r"fit: y must be a numpy array or torch tensor, got list"),
    (dict(optimizer=object()), TypeError, r"fit: optimizer must have step"),
])
def test_fit_bad_input(kw, exc, match):
    d = data.load_digits(seed=0)
    model = _mlp(("numpy", "cpu"), hidden=4)
    args = dict(model=model, loss_fn=nn.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), lr=0.1),
                X=d.X_train[:20], y=d.y_train[:20], epochs=1, batch_size=10, progress=False)
    if kw.get("X_val") == "set":
        kw = dict(X_val=d.X_val)
    args.update(kw)
    with pytest.raises(exc, match=match):
        train.fit(**args)


def test_accuracy_bad_input():
    with pytest.raises(ValueError, match=r"accuracy: logits must be \(N, C\) and y \(N,\)"):
        train.accuracy(np.zeros((3, 2)), np.zeros(4, dtype=np.int64))
    with pytest.raises(TypeError, match=r"accuracy: y must hold integer class labels"):
        train.accuracy(np.zeros((3, 2)), np.zeros(3))
