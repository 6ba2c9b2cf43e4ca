"""A small, explicit training loop: :func:`fit`, :func:`evaluate`, :func:`accuracy`.

One epoch of :func:`fit` is the loop every lecture writes by hand::

    model.train()
    for each minibatch (X_b, y_b) of a seeded random permutation:
        logits = model(X_b)                  # forward
        loss = loss_fn(logits, y_b)
        optimizer.zero_grad()
        model.backward(loss_fn.backward())   # hand-derived backward, fills p.grad
        optimizer.step()
    validation loss/accuracy in eval mode; scheduler and early stopping after the epoch

and :class:`History` records what "babysitting" a run needs: per-epoch losses, accuracies, the
learning rate, and the update/weight ratio ``‖Δw‖/‖w‖`` of the first weight matrix (CS231n's rule
of thumb: around 1e-3). Works with NumPy arrays and torch tensors (CPU/CUDA) alike.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from . import _checks as check
from . import backend as B
from . import nn
from . import optim

__all__ = ["History", "fit", "evaluate", "accuracy"]

_MONITORS = ("val_loss", "val_acc", "train_loss", "train_acc")


@dataclass
class History:
    """Per-epoch records of :func:`fit` (one entry per completed epoch, Python floats).

    ``train_loss``/``train_acc``: averages over the epoch's minibatches (train mode, weighted by
    batch size) — the running numbers a progress bar shows; ``val_loss``/``val_acc``: on the
    validation set after the epoch (eval mode; empty lists without validation data);
    ``lr``: the first param group's learning rate used during the epoch; ``update_ratio``: the mean
    over the epoch's steps of ``‖w_after − w_before‖ / ‖w_before‖`` for the first 2-D parameter
    (the first Linear layer's weight). Accuracies are ``nan`` when targets are not class labels.
    ``best_epoch``: the epoch (0-based) whose state early stopping restored, else ``None``;
    ``stopped_early``: whether early stopping ended the run before ``epochs``.
    """

    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    update_ratio: list = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        """Number of completed epochs."""
        return len(self.train_loss)

    def as_dict(self) -> dict:
        return asdict(self)


def _is_labels(y) -> bool:
    return B.dtype_name(y) in ("int64", "int32", "int16", "int8", "uint8")


def _check_data(fn, X, y, xname="X", yname="y"):
    check.floating(fn, xname, X)
    check.array(fn, yname, y)
    check.same_device(fn, **{xname: X, yname: y})
    if X.ndim < 1 or y.ndim < 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"{fn}: {xname} and {yname} must have the same number of rows, got "
                         f"{tuple(X.shape)} and {tuple(y.shape)}")
    if X.shape[0] == 0:
        raise ValueError(f"{fn}: {xname} must contain at least one sample, got shape {tuple(X.shape)}")


def accuracy(logits, y) -> float:
    """Fraction of rows whose arg-max class equals the label.  logits: (N, C), y: (N,) int -> float."""
    fn = "accuracy"
    check.floating(fn, "logits", logits)
    check.array(fn, "y", y)
    check.same_device(fn, logits=logits, y=y)
    if logits.ndim != 2 or y.ndim != 1 or logits.shape[0] != y.shape[0]:
        raise ValueError(f"accuracy: logits must be (N, C) and y (N,), got {tuple(logits.shape)} and "
                         f"{tuple(y.shape)}")
    if not _is_labels(y):
        raise TypeError(f"accuracy: y must hold integer class labels, got dtype {B.dtype_name(y)}")
    xp = B.array_namespace(logits)
    return float(xp.mean(xp.astype(xp.argmax(logits, axis=1) == y, logits.dtype)))


def _default_loss(y):
    return nn.CrossEntropyLoss() if _is_labels(y) else nn.MSELoss()


def evaluate(model, X, y, *, loss_fn=None, batch_size=1024):
    """``(loss, accuracy)`` of ``model`` on ``(X, y)`` in eval mode (the previous mode is restored).

    ``loss_fn``: a coursekit loss with ``forward(output, target)``, default ``CrossEntropyLoss`` for
    integer labels and ``MSELoss`` otherwise; the loss is the mean over all samples (batches of
    ``batch_size`` weighted by their size). ``accuracy`` is ``nan`` when ``y`` is not labels.
    """
    fn = "evaluate"
    _check_data(fn, X, y)
    batch_size = check.integer(fn, "batch_size", batch_size, low=1)
    loss_fn = _default_loss(y) if loss_fn is None else loss_fn
    was_training = getattr(model, "training", True)
    model.eval()
    try:
        xp = B.array_namespace(X)
        n = X.shape[0]
        labels = _is_labels(y)
        loss_sum, correct = 0.0, 0.0
        for s in range(0, n, batch_size):
            Xb, yb = X[s:s + batch_size, ...], y[s:s + batch_size, ...]
            out = model(Xb)
            loss_sum = loss_sum + loss_fn(out, yb) * Xb.shape[0]
            if labels:
                correct = correct + xp.sum(xp.astype(xp.argmax(out, axis=1) == yb, out.dtype))
        acc = float(correct) / n if labels else math.nan
        return float(loss_sum) / n, acc
    finally:
        model.train(was_training)


def _first_matrix(model):
    for p in model.parameters():
        if p.data.ndim == 2:
            return p
    return None


def fit(model, loss_fn, optimizer, X, y, *, epochs, batch_size, X_val=None, y_val=None, generator=None,
        scheduler=None, early_stopping=None, progress=True, monitor=None) -> History:
    """Train ``model`` with minibatch gradient descent; returns a :class:`History`.

    model: a coursekit ``Module`` (``forward``/``backward``/``parameters``/``train``/``eval``);
    loss_fn: e.g. ``nn.CrossEntropyLoss()`` (``forward(out, y)`` -> scalar, ``backward()`` -> dout);
    optimizer: e.g. ``optim.SGD(model.parameters(), lr=0.1)``. X: (N, ...) floating, y: (N,) int64
    labels (or floating targets for regression/autoencoders); ``X_val``, ``y_val`` optional.
    Each epoch visits a fresh random permutation drawn from ``generator`` (a
    :class:`coursekit.backend.Generator` on X's backend/device; default: the default one), in
    batches of ``batch_size`` (the last one may be smaller).

    After each epoch: ``scheduler.step(metric)`` for :class:`coursekit.optim.ReduceLROnPlateau`,
    ``scheduler.step()`` for any other schedule; ``early_stopping.step(metric, model)``
    (:class:`coursekit.optim.EarlyStopping`) — if it says stop, training ends, and in any case the
    best state it stored is restored into ``model`` at the end. ``metric`` is the History field named
    by ``monitor`` (default ``"val_loss"`` with validation data, else ``"train_loss"``).
    ``progress``: a tqdm bar over epochs (hidden automatically when stderr is not a terminal).
    """
    from tqdm import tqdm

    fn = "fit"
    _check_data(fn, X, y)
    epochs = check.integer(fn, "epochs", epochs, low=1)
    batch_size = check.integer(fn, "batch_size", batch_size, low=1)
    if (X_val is None) != (y_val is None):
        raise ValueError("fit: X_val and y_val must be given together, got "
                         f"X_val={'None' if X_val is None else 'array'}, y_val={'None' if y_val is None else 'array'}")
    has_val = X_val is not None
    if has_val:
        _check_data(fn, X_val, y_val, "X_val", "y_val")
        check.same_device(fn, X=X, X_val=X_val)
    for name, obj, attrs in (("model", model, ("forward", "backward", "parameters", "train", "eval")),
                             ("loss_fn", loss_fn, ("forward", "backward")),
                             ("optimizer", optimizer, ("step", "zero_grad", "param_groups"))):
        missing = [a for a in attrs if not hasattr(obj, a)]
        if missing:
            raise TypeError(f"fit: {name} must have {', '.join(attrs)}; {type(obj).__name__} lacks {missing}")
    if monitor is None:
        monitor = "val_loss" if has_val else "train_loss"
    check.choice(fn, "monitor", monitor, _MONITORS)
    if monitor.startswith("val_") and not has_val and (scheduler is not None or early_stopping is not None):
        raise ValueError(f"fit: monitor={monitor!r} needs X_val and y_val")
    g = B.generator_like(X, generator, fn=fn)

    xp = B.array_namespace(X)
    n = X.shape[0]
    labels = _is_labels(y)
    watched = _first_matrix(model)
    hist = History()
    bar = tqdm(range(epochs), desc="fit", unit="epoch", disable=None if progress else True, leave=False)
    for epoch in bar:
        model.train()
        lr = float(optimizer.param_groups[0]["lr"])
        order = B.asarray_int64(g.permutation(n), backend=B.backend_of(X), device=B.device_of(X))
        loss_sum, correct, ratio_sum, steps = 0.0, 0.0, 0.0, 0
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            Xb, yb = xp.take(X, idx, axis=0), xp.take(y, idx, axis=0)
            out = model(Xb)
            loss = loss_fn(out, yb)
            optimizer.zero_grad()
            model.backward(loss_fn.backward())
            before = None if watched is None else xp.asarray(watched.data, copy=True)
            optimizer.step()
            if before is not None:
                d = watched.data - before
                wn = xp.sqrt(xp.sum(before * before))  # 0 for an all-zero start: ratio undefined (nan)
                ratio_sum = ratio_sum + xp.where(wn > 0, xp.sqrt(xp.sum(d * d)) / xp.where(wn > 0, wn, 1.0), xp.nan)
            loss_sum = loss_sum + loss * Xb.shape[0]
            if labels:
                correct = correct + xp.sum(xp.astype(xp.argmax(out, axis=1) == yb, out.dtype))
            steps += 1
        hist.train_loss.append(float(loss_sum) / n)
        hist.train_acc.append(float(correct) / n if labels else math.nan)
        hist.lr.append(lr)
        hist.update_ratio.append(float(ratio_sum) / steps if watched is not None else math.nan)
        if has_val:
            vl, va = evaluate(model, X_val, y_val, loss_fn=loss_fn)
            hist.val_loss.append(vl)
            hist.val_acc.append(va)
        metric = getattr(hist, monitor)[-1]
        post = {"loss": f"{hist.train_loss[-1]:.4f}"}
        if has_val:
            post["val_acc"] = f"{hist.val_acc[-1]:.3f}"
        bar.set_postfix(post)
        if scheduler is not None:
            if isinstance(scheduler, optim.ReduceLROnPlateau):
                scheduler.step(metric)
            else:
                scheduler.step()
        if early_stopping is not None and early_stopping.step(metric, model):
            hist.stopped_early = epoch + 1 < epochs
            break
    bar.close()
    if early_stopping is not None and early_stopping.best_state is not None:
        early_stopping.restore(model)
        hist.best_epoch = early_stopping.best_epoch
    return hist
