"""lambda_lr, multiplicative_lr, sequential_lr, chained, per_epoch: semantics.md's examples, torch's
restart and interleaving quirks bit for bit, jit, errors."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from losslab_jax.schedules._core import TABLE_SIZE

from tests.schedules._torch_ref import eager, torch_lrs  # noqa: E402

S = ll.schedules




# --- lambda_lr / multiplicative_lr ---------------------------------------------------------------


def test_lambda_lr_is_lr_times_fn():
  s = S.lambda_lr(0.1, lambda k: 1.0 / (k.astype(jnp.float64) + 1.0))
  assert eager(s, 20) == torch_lrs(lambda o, L: L.LambdaLR(o, lambda k: 1.0 / (k + 1.0)), 20)


def test_lambda_lr_integer_factor():
  s = S.lambda_lr(0.5, lambda k: k)
  assert eager(s, 3) == [0.0, 0.5, 1.0, 1.5]
  assert s(2).dtype == jnp.float64


def test_multiplicative_lr_never_uses_fn_at_zero():
  s = S.multiplicative_lr(1.0, lambda k: jnp.where(k == 0, 0.0, 0.5))
  assert eager(s, 3) == [1.0, 0.5, 0.25, 0.125]


def test_multiplicative_lr_is_torch_bitwise():
  f_jax = lambda k: jnp.where(k % 3 == 0, 0.97, 1.01)  # noqa: E731
  f_torch = lambda k: 0.97 if k % 3 == 0 else 1.01  # noqa: E731
  s = S.multiplicative_lr(0.1, f_jax)
  want = torch_lrs(lambda o, L: L.MultiplicativeLR(o, f_torch), 60)
  assert eager(s, 60) == want
  assert np.asarray(jax.jit(s)(jnp.arange(61))).tolist() == want


# --- sequential_lr --------------------------------------------------------------------------------


def test_sequential_semantics_example_restarts_from_the_childs_base():
  """semantics.md: LinearLR(.1, iters=5) cut at 3, then ExpLR(.5): .01 .028 .046 .1 .05 .025"""
  s = S.sequential_lr([S.linear_lr(0.1, start_factor=0.1, total_iters=5), S.exponential_lr(0.1, 0.5)], [3])
  np.testing.assert_allclose(eager(s, 5), [.01, .028, .046, .1, .05, .025], rtol=1e-12)


def test_sequential_milestone_zero_starts_in_the_second_schedule():
  """semantics.md: milestones=[0] starts in the second child: .1 .09 .081"""
  s = S.sequential_lr([S.constant_lr(0.1, 0.5, 3), S.exponential_lr(0.1, 0.9)], [0])
  np.testing.assert_allclose(eager(s, 2), [.1, .09, .081], rtol=1e-12)


def test_sequential_multiplicative_child_continues_from_the_previous_lr_times_fn0():
  # torch: _update_lr(0) runs MultiplicativeLR.get_lr, i.e. current lr * f(0): .5 * .9 at the milestone
  s = S.sequential_lr([S.exponential_lr(1.0, 0.5), S.multiplicative_lr(1.0, lambda k: 0.9)], [2])
  np.testing.assert_allclose(eager(s, 4), [1.0, 0.5, 0.45, 0.405, 0.3645], rtol=1e-15)


SEQUENCES = [
    ("linear-cosine-step", lambda F: [F.linear_lr(0.1, 0.01, 1.0, 4), F.cosine_annealing_lr(0.1, 6, 1e-4),
                                      F.step_lr(0.1, 2, 0.7)], [4, 16],
     lambda o, L: [L.LinearLR(o, 0.01, 1.0, 4), L.CosineAnnealingLR(o, 6, 1e-4), L.StepLR(o, 2, 0.7)]),
    ("cosine-restart", lambda F: [F.step_lr(0.1, 2), F.cosine_annealing_lr(0.1, 5, 3e-3)], [3],
     lambda o, L: [L.StepLR(o, 2), L.CosineAnnealingLR(o, 5, 3e-3)]),
    ("constant-T0-restart", lambda F: [F.exponential_lr(0.1, 0.9), F.constant_lr(0.1, 0.3, 0)], [2],
     lambda o, L: [L.ExponentialLR(o, 0.9), L.ConstantLR(o, 0.3, 0)]),
    ("dup-milestones", lambda F: [F.exponential_lr(0.1, 0.8), F.polynomial_lr(0.1, 3),
                                  F.multistep_lr(0.1, [0, 1, 2], 0.5)], [4, 4],
     lambda o, L: [L.ExponentialLR(o, 0.8), L.PolynomialLR(o, 3), L.MultiStepLR(o, [0, 1, 2], 0.5)]),
    ("multiplicative-restart", lambda F: [F.exponential_lr(0.1, 0.7),
                                          F.multiplicative_lr(0.1, lambda k: jnp.where(k % 2 == 1, 0.99, 0.9))],
     [5], lambda o, L: [L.ExponentialLR(o, 0.7), L.MultiplicativeLR(o, lambda k: 0.99 if k % 2 == 1 else 0.9)]),
    ("warm-restarts-cyclic", lambda F: [F.cosine_annealing_warm_restarts(0.1, 3, 2), F.cyclic_lr(0.1, 0.5, 2)],
     [7], lambda o, L: [L.CosineAnnealingWarmRestarts(o, 3, 2), L.CyclicLR(o, 0.1, 0.5, 2, cycle_momentum=False)]),
]


@pytest.mark.parametrize("name,ours,milestones,theirs", SEQUENCES, ids=[s[0] for s in SEQUENCES])
def test_sequential_is_torch_bitwise(name, ours, milestones, theirs):
  s = S.sequential_lr(ours(S), milestones)
  want = torch_lrs(lambda o, L: L.SequentialLR(o, theirs(o, L), milestones), 40)
  assert eager(s, 40) == want
  np.testing.assert_allclose(np.asarray(jax.jit(s)(jnp.arange(41))), want, rtol=1e-15)


def test_sequential_never_asks_an_ended_one_cycle_for_a_later_count():
  s = S.sequential_lr([S.one_cycle_lr(1.0, 10), S.exponential_lr(0.04, 0.9)], [10])
  assert float(s(50)) == pytest.approx(0.04 * 0.9**40, rel=1e-13)  # one_cycle_lr(50) would raise


def test_sequential_accepts_plain_functions():
  s = S.sequential_lr([lambda k: 0.1 * jnp.ones(jnp.shape(k)), lambda k: 0.01 * (k + 1)], [3])
  np.testing.assert_allclose(eager(s, 5), [.1, .1, .1, .01, .02, .03], rtol=1e-15)


# --- chained ----------------------------------------------------------------------------------------


def test_chained_semantics_example():
  """semantics.md: [ConstantLR(.1, 2), ExpLR(.9)]: .01 .009 .081 .0729"""
  s = S.chained([S.constant_lr(0.1, factor=0.1, total_iters=2), S.exponential_lr(0.1, 0.9)])
  np.testing.assert_allclose(eager(s, 3), [.01, .009, .081, .0729], rtol=1e-12)


CHAINS = [
    ("linear-step-multistep", lambda F: [F.linear_lr(0.1, 0.2, 1.0, 6), F.step_lr(0.1, 4, 0.6),
                                         F.multistep_lr(0.1, [0, 5, 5, 11], 0.8)],
     lambda o, L: [L.LinearLR(o, 0.2, 1.0, 6), L.StepLR(o, 4, 0.6), L.MultiStepLR(o, [0, 5, 5, 11], 0.8)]),
    ("exp-poly-mult", lambda F: [F.exponential_lr(0.1, 0.97), F.polynomial_lr(0.1, 20, 0.5),
                                 F.multiplicative_lr(0.1, lambda k: jnp.where(k % 2 == 1, 0.99, 0.9))],
     lambda o, L: [L.ExponentialLR(o, 0.97), L.PolynomialLR(o, 20, 0.5),
                   L.MultiplicativeLR(o, lambda k: 0.99 if k % 2 == 1 else 0.9)]),
]


@pytest.mark.parametrize("name,ours,theirs", CHAINS, ids=[c[0] for c in CHAINS])
def test_chained_is_torch_bitwise(name, ours, theirs):
  s = S.chained(ours(S))
  want = torch_lrs(lambda o, L: L.ChainedScheduler(theirs(o, L)), 30)
  assert eager(s, 30) == want
  assert np.asarray(jax.jit(s)(jnp.arange(31))).tolist() == want


def test_chained_past_the_table():
  s = S.chained([S.constant_lr(0.1, 0.5, 100), S.exponential_lr(0.1, 0.9995)])
  want = torch_lrs(lambda o, L: L.ChainedScheduler([L.ConstantLR(o, 0.5, 100), L.ExponentialLR(o, 0.9995)]),
                   TABLE_SIZE + 100)
  got = np.asarray(jax.jit(s)(jnp.arange(TABLE_SIZE + 101)))
  np.testing.assert_array_equal(got[:TABLE_SIZE], want[:TABLE_SIZE])
  np.testing.assert_allclose(got, want, rtol=1e-13)


def test_chained_plain_functions_use_the_product_formula():
  s = S.chained([lambda k: 0.1 * 0.5 ** k, lambda k: 0.1 * jnp.where(k < 2, 0.1, 1.0)], lr=0.1)
  np.testing.assert_allclose(eager(s, 3), [0.01, 0.005, 0.025, 0.0125], rtol=1e-14)  # 0.1 * 0.5**k * (.1 | 1)


@pytest.mark.parametrize("child", [S.one_cycle_lr(0.1, 10), S.cosine_annealing_lr(0.1, 10), S.lambda_lr(0.1, jnp.exp),
                                   S.cyclic_lr(0.01, 0.1), S.warmup_cosine(0.1, 1, 5)],
                         ids=["one_cycle", "cosine", "lambda", "cyclic", "warmup_cosine"])
def test_chained_refuses_non_chainable_schedules(child):
  with pytest.raises(ValueError, match="chained: expected chainable schedules"):
    S.chained([S.exponential_lr(0.1, 0.9), child])


def test_chained_errors():
  with pytest.raises(ValueError, match=re.escape("chained: expected schedules built on the same lr")):
    S.chained([S.exponential_lr(0.1, 0.9), S.step_lr(0.2, 3)])
  with pytest.raises(ValueError, match=re.escape("chained: expected `lr=`")):
    S.chained([lambda k: 0.1])
  with pytest.raises(ValueError, match="chained: expected at least one schedule"):
    S.chained([])


# --- per_epoch --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spe", [1, 3, 7])
def test_per_epoch_matches_torch_stepping_once_per_epoch(spe):
  s = S.per_epoch(S.cosine_annealing_lr(0.1, 5), spe)
  want = torch_lrs(lambda o, L: L.CosineAnnealingLR(o, 5), 40, steps_per_epoch=spe)
  assert eager(s, 40) == want
  assert np.asarray(jax.jit(s)(jnp.arange(41, dtype=jnp.int32))).tolist() == want


def test_per_epoch_drives_an_optimizer():
  tx = ll.optim.sgd(lr=S.per_epoch(S.step_lr(1.0, 1, 0.5), 2))
  p, state = jnp.zeros(()), None
  state = tx.init(p)
  moves = []
  for _ in range(5):
    u, state = tx.update(jnp.ones(()), state, p)
    moves.append(float(u))
  assert moves == [-1.0, -1.0, -0.5, -0.5, -0.25]


# --- jit, errors ------------------------------------------------------------------------------------

MAKERS = [lambda: S.lambda_lr(0.1, lambda k: jnp.power(0.9, k.astype(jnp.result_type(float)))),
          lambda: S.multiplicative_lr(0.1, lambda k: 0.9),
          lambda: S.sequential_lr([S.linear_lr(0.1, 0.1, 1.0, 3), S.cosine_annealing_lr(0.1, 5)], [3]),
          lambda: S.chained([S.constant_lr(0.1, 0.5, 2), S.exponential_lr(0.1, 0.9)]),
          lambda: S.per_epoch(S.exponential_lr(0.1, 0.9), 4)]
IDS = ["lambda", "multiplicative", "sequential", "chained", "per_epoch"]


@pytest.mark.parametrize("make", MAKERS, ids=IDS)
def test_jit_no_retrace_vector_dtypes(make):
  traces = []

  @jax.jit
  def f(k):
    traces.append(1)
    return make()(k)

  vals = [float(f(jnp.asarray(k, jnp.int32))) for k in range(12)]
  assert len(traces) == 1
  np.testing.assert_allclose(vals, eager(make(), 11), rtol=1e-15)
  np.testing.assert_allclose(np.asarray(make()(np.arange(12).reshape(3, 4))).ravel(), vals, rtol=1e-15)
  with jax.enable_x64(False):
    assert make()(jnp.asarray(3, jnp.int32)).dtype == jnp.float32
  with jax.numpy_dtype_promotion("strict"):
    make()(jnp.arange(12))


def test_schedules_drive_inject_hyperparams():
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=S.sequential_lr(
      [S.linear_lr(1.0, 0.5, 1.0, 2), S.exponential_lr(1.0, 0.5)], [2]))
  state = tx.init(jnp.zeros(()))
  moves = []
  for _ in range(4):
    u, state = jax.jit(tx.update)(jnp.ones(()), state)
    moves.append(float(u))
  assert moves == [-0.5, -0.75, -1.0, -0.5]


@pytest.mark.parametrize("call,error,message", [
    (lambda: S.lambda_lr(0.1, 3.0), TypeError, "lambda_lr: expected `fn` to be a function of the count"),
    (lambda: S.multiplicative_lr(0.1, None), TypeError, "multiplicative_lr: expected `fn` to be a function"),
    (lambda: S.sequential_lr([], []), ValueError, "sequential_lr: expected at least one schedule"),
    (lambda: S.sequential_lr([S.step_lr(0.1, 2)] * 2, []), ValueError,
     "sequential_lr: expected one milestone fewer than schedules, got 2 schedules and 0 milestones"),
    (lambda: S.sequential_lr([S.step_lr(0.1, 2)] * 3, [5, 2]), ValueError,
     "sequential_lr: expected non-decreasing `milestones`, got [5, 2]"),
    (lambda: S.sequential_lr([S.step_lr(0.1, 2)] * 2, [-1]), ValueError, "expected `milestones[i]`"),
    (lambda: S.sequential_lr([S.step_lr(0.1, 2), ll.optim.reduce_lr_on_plateau()], [3]), TypeError,
     "reduce_lr_on_plateau is an optax transformation"),
    (lambda: S.per_epoch(S.step_lr(0.1, 2), 0), ValueError, "per_epoch: expected `steps_per_epoch`"),
    (lambda: S.per_epoch(0.1, 2), TypeError, "per_epoch: expected `schedule` to be a schedule"),
], ids=["lambda", "multiplicative", "seq-empty", "seq-count", "seq-order", "seq-neg", "seq-plateau", "spe",
        "per-epoch-float"])
def test_bad_arguments(call, error, message):
  with pytest.raises(error, match=re.escape(message)):
    call()
