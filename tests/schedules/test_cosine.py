"""cosine_annealing_lr, cosine_annealing_warm_restarts, warmup_cosine: semantics.md's examples,
torch's numbers, past-the-end behaviour, jit, dtypes, errors."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll
from losslab_jax.schedules._core import TABLE_SIZE

from tests.schedules._torch_ref import eager, torch_lrs  # noqa: E402

S = ll.schedules




def closed_cosine(k, lr, T, eta=0.0):
  return eta + (lr - eta) * (1 + np.cos(np.pi * np.asarray(k) / T)) / 2


# --- cosine_annealing_lr -------------------------------------------------------------------------


def test_cosine_keeps_oscillating_past_T_max():
  """semantics.md: T=10 goes 0.1 ... 0.001 at k=10 ... back to 0.1 at k=20 (eta_min=0.001)."""
  s = S.cosine_annealing_lr(0.1, T_max=10, eta_min=0.001)
  v = eager(s, 25)
  assert v[0] == 0.1
  assert v[10] == pytest.approx(0.001, rel=1e-12)
  assert v[20] == pytest.approx(0.1, rel=1e-12)
  np.testing.assert_allclose(v, closed_cosine(np.arange(26), 0.1, 10, 0.001), rtol=1e-13)


@pytest.mark.parametrize("T,eta", [(10, 0.0), (7, 1e-3), (1, 0.0), (3, 0.05)])
def test_cosine_is_torch_bitwise_in_the_table(T, eta):
  assert eager(S.cosine_annealing_lr(0.1, T, eta), 70) == torch_lrs(
      lambda o, L: L.CosineAnnealingLR(o, T, eta), 70)


def test_cosine_past_the_table_is_within_1e13_of_torch():
  s = S.cosine_annealing_lr(0.1, T_max=700, eta_min=1e-4)
  want = np.asarray(torch_lrs(lambda o, L: L.CosineAnnealingLR(o, 700, 1e-4), TABLE_SIZE + 300))
  got = np.asarray(jax.jit(s)(jnp.arange(TABLE_SIZE + 301)))
  np.testing.assert_array_equal(got[:TABLE_SIZE], want[:TABLE_SIZE])
  np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-17)


def test_cosine_many_periods_follows_torchs_restarts():
  """After each minimum torch restarts from eta_min + (lr - eta_min)(1 - cos(pi/T))/2 and keeps that
  step's cancellation for the whole period: the exact closed form drifts from torch (~3e-12 here)."""
  T, K = 100, 12000
  want = np.asarray(torch_lrs(lambda o, L: L.CosineAnnealingLR(o, T, 1e-4), K))
  got = np.asarray(jax.jit(S.cosine_annealing_lr(0.1, T, 1e-4))(jnp.arange(K + 1)))
  np.testing.assert_allclose(got, want, rtol=1e-13)


def test_cosine_float32_stays_accurate_at_large_counts():
  """float32 reduces the count modulo 2 T_max first: pi * k in float32 would be ~1e-4 off at k ~ 1e6."""
  s = S.cosine_annealing_lr(np.float32(1.0), T_max=1000)
  k = np.concatenate([np.arange(TABLE_SIZE, TABLE_SIZE + 3000, 7), np.arange(10**6, 10**6 + 3000, 7)])
  got = np.asarray(s(k))
  assert got.dtype == np.float32
  # float32 values <= 1 and a float32 phase: a few ulps of 1 (6e-8 each), measured 2.6e-7
  np.testing.assert_allclose(got, closed_cosine(k, 1.0, 1000), atol=1e-6)


def test_cosine_float_T_max():
  s = S.cosine_annealing_lr(1.0, T_max=2.5)
  np.testing.assert_allclose(eager(s, 6), closed_cosine(np.arange(7), 1.0, 2.5), rtol=1e-12, atol=1e-15)


# --- cosine_annealing_warm_restarts --------------------------------------------------------------


def test_warm_restarts_semantics_example():
  """semantics.md: T_0=3, T_mult=2: .1,.075,.025, .1,.0933,.075,.05,.025,.0067, .1"""
  got = eager(S.cosine_annealing_warm_restarts(0.1, T_0=3, T_mult=2), 9)
  # the documented values are written with 4 decimals: half a unit of the last one
  np.testing.assert_allclose(got, [.1, .075, .025, .1, .0933, .075, .05, .025, .0067, .1], atol=5e-5)


@pytest.mark.parametrize("T_0,T_mult,eta", [(3, 2, 0.0), (5, 1, 1e-3), (2, 3, 1e-4), (1, 1, 0.0), (1, 2, 0.0)])
def test_warm_restarts_are_torch_bitwise_eagerly(T_0, T_mult, eta):
  ours = S.cosine_annealing_warm_restarts(0.1, T_0, T_mult, eta)
  want = torch_lrs(lambda o, L: L.CosineAnnealingWarmRestarts(o, T_0, T_mult, eta), 100)
  assert eager(ours, 100) == want
  # under jit XLA fuses multiply-adds (one rounding instead of two): at most an ulp or two
  np.testing.assert_allclose(np.asarray(jax.jit(ours)(jnp.arange(101))), want, rtol=1e-15, atol=1e-17)


def test_warm_restarts_periods_at_large_counts():
  s = S.cosine_annealing_warm_restarts(1.0, T_0=10, T_mult=2)
  starts = [10 * (2**n - 1) for n in range(1, 30)]  # every period starts at lr
  np.testing.assert_array_equal(np.asarray(s(np.asarray(starts))), 1.0)
  with jax.enable_x64(False):  # int32 counts: the boundaries stop at the int32 range
    assert float(s(jnp.asarray(10 * (2**27 - 1), jnp.int32))) == 1.0


# --- warmup_cosine --------------------------------------------------------------------------------


def hf_factor(k, w, T):
  """transformers.get_cosine_schedule_with_warmup's factor, held at 0 from T on."""
  if k < w:
    return k / max(1, w)
  p = (k - w) / max(1, T - w)
  return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(p, 1.0))))


@pytest.mark.parametrize("w,T", [(5, 20), (0, 10), (10, 10), (1, 2)])
def test_warmup_cosine_values(w, T):
  got = eager(S.warmup_cosine(0.3, w, T), T + 5)
  want = [0.3 * hf_factor(k, w, T) for k in range(T + 6)]
  np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
  assert got[-1] == 0.0 and got[T] == (0.3 if w == T else 0.0)


def test_warmup_cosine_matches_optax_up_to_rounding():
  import optax

  ours = S.warmup_cosine(1.0, 10, 100)
  theirs = optax.warmup_cosine_decay_schedule(0.0, 1.0, 10, 100)
  k = np.arange(100)
  np.testing.assert_allclose(np.asarray(ours(k)), np.asarray(theirs(k)), atol=1e-14)   # float64: measured 2.2e-16


# --- jit, dtypes, errors -------------------------------------------------------------------------

MAKERS = [lambda: S.cosine_annealing_lr(0.1, 10, 1e-3), lambda: S.cosine_annealing_warm_restarts(0.1, 3, 2),
          lambda: S.warmup_cosine(0.1, 5, 50)]
IDS = ["cosine", "warm_restarts", "warmup_cosine"]


@pytest.mark.parametrize("make", MAKERS, ids=IDS)
def test_jit_no_retrace_and_vector_counts(make):
  traces = []

  @jax.jit
  def f(k):
    traces.append(1)
    return make()(k)

  vals = [float(f(jnp.asarray(k, jnp.int32))) for k in range(30)]
  assert len(traces) == 1
  np.testing.assert_allclose(vals, eager(make(), 29), rtol=1e-15)
  np.testing.assert_allclose(np.asarray(make()(np.arange(30).reshape(3, 10))).ravel(), vals, rtol=1e-15)


@pytest.mark.parametrize("make", MAKERS, ids=IDS)
def test_dtypes_and_strict_promotion(make):
  assert make()(3).dtype == jnp.float64
  with jax.enable_x64(False):
    assert make()(jnp.asarray(3, jnp.int32)).dtype == jnp.float32
  with jax.numpy_dtype_promotion("strict"):
    make()(jnp.arange(TABLE_SIZE + 2))


@pytest.mark.parametrize("call,message", [
    (lambda: S.cosine_annealing_lr(0.1, 0), "cosine_annealing_lr: expected `T_max` to be a positive number, got 0"),
    (lambda: S.cosine_annealing_warm_restarts(0.1, 0), "expected positive integer `T_0`, got 0"),
    (lambda: S.cosine_annealing_warm_restarts(0.1, 2.5), "expected positive integer `T_0`, got 2.5"),
    (lambda: S.cosine_annealing_warm_restarts(0.1, 3, 0), "expected integer `T_mult` >= 1, got 0"),
    (lambda: S.cosine_annealing_warm_restarts(0.1, 3, 1, "0"), "expected float or int `eta_min`"),
    (lambda: S.warmup_cosine(0.1, 20, 10), "warmup_cosine: expected `warmup_steps` <= `total_steps`, got 20 > 10"),
    (lambda: S.warmup_cosine(0.1, 0, 0), "warmup_cosine: expected `total_steps` to be a positive integer"),
], ids=["T_max", "T_0", "T_0-float", "T_mult", "eta_min", "warmup", "total"])
def test_bad_arguments(call, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    call()
