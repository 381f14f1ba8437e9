"""lr_range_test against numpy: the sweep, closed-form SGD trajectories, smoothing, divergence."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from losslab_jax import analysis
from tests.helpers import assert_close, rng


def _numpy_range_test(a, w, lrs, beta, factor):
  """SGD on 0.5 * a * w^2, with fastai's smoothing and stop rule, written out in numpy."""
  losses, smooth, avg, best, stop = [], [], 0.0, np.inf, None
  for k, lr in enumerate(lrs):
    if stop is not None:
      losses.append(np.nan), smooth.append(np.nan)
      continue
    loss = 0.5 * a * w * w
    avg = beta * avg + (1 - beta) * loss
    s = avg / (1 - beta ** (k + 1))
    best = min(best, s)
    losses.append(loss), smooth.append(s)
    if not np.isfinite(s) or s > factor * best:
      stop = k
    w = w - lr * a * w
  return np.array(losses), np.array(smooth), stop


def test_sweep_and_closed_form_quadratic_trajectory():
  a, w0 = 3.0, 1.5
  res = analysis.lr_range_test(lambda w: 0.5 * a * w * w, jnp.asarray(w0, jnp.float64),
                               min_lr=1e-3, max_lr=30.0, num_steps=60)
  lrs = np.geomspace(1e-3, 30.0, 60)
  assert_close(res.lrs, lrs, rtol=1e-13)
  losses, smooth, stop = _numpy_range_test(a, w0, lrs, 0.98, 4.0)
  assert stop is not None and lrs[stop] > 2 / a  # SGD on a quadratic is stable only below 2 / a
  assert bool(res.diverged) and int(res.diverged_at) == stop
  assert_close(res.losses, losses, rtol=1e-10)
  assert_close(res.smoothed_losses, smooth, rtol=1e-10)
  assert np.all(np.isnan(np.asarray(res.losses)[stop + 1:]))
  finite = np.where(np.arange(60) < stop, smooth, np.inf)
  assert int(res.min_loss_index) == int(np.argmin(finite))


def test_suggestion_is_the_steepest_smoothed_descent_and_lies_in_the_stable_range():
  r = rng(0)
  q, _ = np.linalg.qr(r.standard_normal((8, 8)))
  a = q @ np.diag(np.geomspace(0.5, 4.0, 8)) @ q.T  # gradient descent is stable for lr < 2 / 4
  res = analysis.lr_range_test(lambda w: 0.5 * w @ jnp.asarray(a) @ w, jnp.asarray(r.standard_normal(8)),
                               min_lr=1e-4, max_lr=10.0, num_steps=100)
  assert float(res.lrs[res.diverged_at]) > 0.5
  assert 1e-3 < float(res.suggested_lr) < 0.5
  # the steepest descent in numpy: np.gradient over log(lr) on the eligible steps
  s, end = np.asarray(res.smoothed_losses), int(res.diverged_at)
  slope = np.gradient(s[:end], np.log(np.asarray(res.lrs[:end])))
  k = 10 + int(np.argmin(slope[10:end - 5]))
  assert int(res.suggested_index) == k and float(res.suggested_lr) == float(res.lrs[k])


def test_minibatches_cycle_and_sgd_steps_match_numpy():
  r = rng(1)
  x, y = r.standard_normal((2, 6, 3)), r.standard_normal((2, 6))  # B = 2 batches of 6
  loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)  # noqa: E731
  w0 = r.standard_normal(3)
  res = analysis.lr_range_test(loss, jnp.asarray(w0), (x, y), min_lr=1e-2, max_lr=0.1, num_steps=20,
                               smoothing=0.0, skip_start=2, skip_end=2)
  w, lrs = w0.copy(), np.geomspace(1e-2, 0.1, 20)
  for k in range(4):  # step k uses batch k % 2
    xb, yb = x[k % 2], y[k % 2]
    assert_close(res.losses[k], np.mean((xb @ w - yb) ** 2), rtol=1e-12, err_msg=str(k))
    w = w - lrs[k] * 2 * xb.T @ (xb @ w - yb) / 6
  assert_close(res.smoothed_losses, res.losses, rtol=0)  # smoothing=0 is the raw curve
  assert not bool(res.diverged) and int(res.diverged_at) == -1


def test_any_optimizer_factory_adam_first_steps():
  grad_w = np.array([2.0, -0.5])  # loss = g . w, constant gradient
  res = analysis.lr_range_test(lambda w: jnp.asarray(grad_w) @ w + 10.0, jnp.zeros(2), optimizer=optax.adam,
                               min_lr=1e-3, max_lr=1e-1, num_steps=20, smoothing=0.0)
  lrs = np.geomspace(1e-3, 1e-1, 20)
  # Adam with a constant gradient moves every coordinate by -lr * g / (|g| + eps) per step
  steps = np.cumsum(lrs[:3])[:, None] * grad_w / (np.abs(grad_w) + 1e-8)
  assert_close(res.losses[1:4], 10.0 - steps @ grad_w, rtol=1e-12)  # positive loss: the stop rule needs it


def test_jit_without_retrace_and_result_pytree():
  traces = []

  def loss(w):
    traces.append(1)
    return jnp.sum(w**2)

  analysis.lr_range_test(loss, jnp.ones(2, jnp.float64), num_steps=30)
  n = len(traces)
  res = analysis.lr_range_test(loss, jnp.full(2, 3.0, jnp.float64), num_steps=30, max_lr=5.0, smoothing=0.9)
  assert len(traces) == n
  assert isinstance(jax.tree.map(lambda v: v, res), analysis.LRRangeResult)


@pytest.mark.parametrize("kwargs, match", [
    (dict(min_lr=0.0), "min_lr"),
    (dict(max_lr=1e-8), "max_lr"),
    (dict(smoothing=1.0), "smoothing"),
    (dict(diverge_factor=1.0), "diverge_factor"),
    (dict(num_steps=12), "num_steps"),
    (dict(skip_start=-1), "skip_start"),
])
def test_bad_hyperparameters_raise(kwargs, match):
  with pytest.raises(ValueError, match=f"lr_range_test: expected `{match}`"):
    analysis.lr_range_test(lambda w: jnp.sum(w**2), jnp.ones(2), **kwargs)


def test_bad_batches_raise():
  with pytest.raises(ValueError, match="leading batch axis"):
    analysis.lr_range_test(lambda w, b: jnp.sum(w), jnp.ones(2), (jnp.ones((3, 2)), jnp.ones((4,))))
