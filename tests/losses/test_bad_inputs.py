"""Nothing silently wrong: NaN propagation, bad labels under jit, infinities, precision, clear errors.

The expected numbers are hand math (stated next to each) or torch's formula evaluated in numpy;
torch itself is only consulted where the test says so (importorskip inside the test).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll

L = ll.losses
NAN = float("nan")


def _f64(x):
  return jnp.asarray(x, jnp.float64)


def _value_and_grad(fn, *args, argnums=0):
  return jax.jit(jax.value_and_grad(fn, argnums=argnums))(*args)


# --- out-of-range class labels under jit: value AND gradient non-finite -----------------------

X3 = _f64([[0.1, -0.4, 0.9], [1.0, 0.0, -1.0], [0.3, 0.2, 0.1], [-0.5, 0.5, 0.0]])
BAD = jnp.array([0, 3, 2, -1])  # rows 1 and 3 are out of range
GOOD_IGNORED = jnp.array([0, -100, 2, 1])  # row 1 ignored, all others valid
CLASS_LOSSES = {
    "cross_entropy": L.cross_entropy,
    "nll_loss": L.nll_loss,
    "focal_loss": L.focal_loss,
    "multi_margin_loss": L.multi_margin_loss,
}


@pytest.mark.parametrize("name", list(CLASS_LOSSES))
def test_out_of_range_label_under_jit_gives_nan_value_and_gradient(name):
  fn = CLASS_LOSSES[name]
  val, g = _value_and_grad(lambda x, y: fn(x, y), X3, BAD)
  g = np.asarray(g)
  assert np.isnan(val)
  assert np.isnan(g[[1, 3]]).any(axis=-1).all(), g  # each offending row
  assert np.isfinite(g[[0, 2]]).all(), g  # the others keep their own (finite) gradient


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "focal_loss"])
def test_ignored_rows_keep_exactly_zero_gradient_under_jit(name):
  fn = CLASS_LOSSES[name]
  val, g = _value_and_grad(lambda x, y: fn(x, y), X3, GOOD_IGNORED)
  g = np.asarray(g)
  assert np.isfinite(val) and np.isfinite(g).all()
  assert (g[1] == 0).all()


def test_out_of_range_multilabel_margin_row_gradient_is_nan_under_jit():
  y = jnp.array([[0, -1, 0], [5, -1, 0], [1, 2, -1], [0, 1, -1]])
  val, g = _value_and_grad(lambda x, t: L.multilabel_margin_loss(x, t), X3, y)
  assert np.isnan(val) and np.isnan(np.asarray(g)[1]).any() and np.isfinite(np.asarray(g)[[0, 2, 3]]).all()


# --- NaN in, NaN out (value and gradient) for the hinge and distance guards -------------------

NAN_CASES = {
    # the examples: torch gives NaN for each
    "triplet": (lambda a, p, n: L.triplet_margin_loss(a, p, n), ([[1.0, 2.0]], [[1.0, 2.5]], [[NAN, 0.0]]), 2),
    "triplet-p1-swap": (lambda a, p, n: L.triplet_margin_loss(a, p, n, p=1.0, swap=True),
                        ([[1.0, 2.0]], [[1.0, 2.5]], [[NAN, 0.0]]), 2),
    "triplet-p3": (lambda a, p, n: L.triplet_margin_loss(a, p, n, p=3.0), ([[1.0, 2.0]], [[1.0, 2.5]], [[NAN, 0.0]]), 2),
    "margin_ranking": (lambda a, b, y: L.margin_ranking_loss(a, b, y), ([NAN], [0.0], [1.0]), 0),
    "hinge_embedding": (lambda x, y: L.hinge_embedding_loss(x, y), ([NAN], [-1.0]), 0),
    "cosine_embedding": (lambda a, b, y: L.cosine_embedding_loss(a, b, y), ([[NAN, 1.0]], [[1.0, 0.0]], [-1]), 0),
    "contrastive": (lambda a, b, y: L.contrastive_loss(a, b, y), ([[NAN, 1.0]], [[1.0, 0.0]], [1.0]), 0),
    "contrastive-similar": (lambda a, b, y: L.contrastive_loss(a, b, y), ([[NAN, 1.0]], [[1.0, 0.0]], [0.0]), 0),
    "multi_margin": (lambda x, y: L.multi_margin_loss(x, y), ([[NAN, 0.0, 5.0]], [2]), 0),
    "multilabel_margin": (lambda x, y: L.multilabel_margin_loss(x, y), ([[NAN, 0.0, 5.0]], [[2, -1, 0]]), 0),
    "huber": (lambda x, y: L.huber_loss(x, y), ([NAN, 1.0], [0.0, 0.0]), 0),
    "smooth_l1": (lambda x, y: L.smooth_l1_loss(x, y), ([NAN, 1.0], [0.0, 0.0]), 0),
    "l1": (lambda x, y: L.l1_loss(x, y), ([NAN, 1.0], [0.0, 0.0]), 0),
    "relu": (lambda x: jnp.sum(ll.activations.relu(x)), ([NAN, 1.0],), 0),
    "sigmoid": (lambda x: jnp.sum(ll.activations.sigmoid(x)), ([NAN, 1.0],), 0),
    "tanh": (lambda x: jnp.sum(ll.activations.tanh(x)), ([NAN, 30.0],), 0),
    "softmax": (lambda x: ll.activations.softmax(x)[1], ([NAN, 1.0],), 0),
    "log_softmax": (lambda x: ll.activations.log_softmax(x)[1], ([NAN, 1.0],), 0),
}


def _cast(a):
  a = np.asarray(a)
  return jnp.asarray(a, jnp.float64) if a.dtype.kind == "f" else jnp.asarray(a)


@pytest.mark.parametrize("name", list(NAN_CASES))
def test_nan_input_gives_nan_value_and_gradient(name):
  fn, args, argnum = NAN_CASES[name]
  args = tuple(_cast(a) for a in args)
  val, g = jax.value_and_grad(fn, argnums=argnum)(*args)  # eager: no compile per case
  assert np.isnan(val), f"value {val}"
  assert np.isnan(np.asarray(g)).any(), f"gradient {g}"


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, math.inf])
def test_pairwise_distance_kinks_keep_torch_gradient_zero(p):
  # a == positive exactly (d = eps only) and a zero difference entry: torch's norm backward gives 0
  a = _f64([[1.0, 2.0]])
  g = jax.grad(lambda pos: L.triplet_margin_loss(a, pos, a + 5.0, p=p, eps=0.0, margin=100.0))(a)
  np.testing.assert_array_equal(np.asarray(g), 0.0)


def test_hinge_gradient_at_kink_is_still_zero():
  g = jax.grad(lambda a: L.margin_ranking_loss(a, _f64([0.0]), _f64([1.0])))(_f64([0.0]))
  assert float(g[0]) == 0.0


# --- huber / smooth_l1 / l1 at +-inf: torch's bounded gradient --------------------------------

@pytest.mark.parametrize(("name", "kwargs", "slope", "inner"), [
    ("huber_loss", {"delta": 2.0}, 2.0, 0.5),  # inside: d
    ("huber_loss", {}, 1.0, 0.5),
    ("smooth_l1_loss", {"beta": 2.0}, 1.0, 0.25),  # inside: d / beta
    ("smooth_l1_loss", {"beta": 0.0}, 1.0, 1.0),  # l1: sign(d)
    ("l1_loss", {}, 1.0, 1.0),
])
def test_gradient_at_infinite_residual_is_the_linear_slope(name, kwargs, slope, inner):
  # hand math: outside the threshold d/dx of delta (|d| - delta / 2) is delta sign(d) (torch: +-delta)
  fn = getattr(L, name)
  x = _f64([math.inf, -math.inf, 0.5])
  g = jax.grad(lambda a: fn(a, jnp.zeros_like(a), reduction="sum", **kwargs))(x)
  np.testing.assert_array_equal(np.asarray(g), [slope, -slope, inner])


# --- cross-entropy precision: torch's x - max - log(sum(exp(x - max))) ------------------------

def _torch_formula_f32(x, t):
  x = np.asarray(x, np.float32)
  m = x.max(-1, keepdims=True)
  lp = (x - m) - np.log(np.exp(x - m).sum(-1, keepdims=True))
  return -lp[np.arange(len(t)), t]


@pytest.mark.parametrize("x", [[[50.0, 40.0]], [[1e4, 1e4 - 3.0, -1e4]], [[-1e4, 1e4 - 30.0, 1e4 - 29.5]]],
                         ids=["confident", "big-1e4", "big-mixed"])
def test_cross_entropy_float32_accuracy_on_confident_and_large_rows(x):
  t = [0] if len(x[0]) == 2 else [0 if x[0][0] > 0 else 2]
  xj = jnp.asarray(x, jnp.float32)
  got = L.cross_entropy(xj, jnp.array(t), reduction="none")
  want = _torch_formula_f32(x, t)
  exact = np.asarray(L.cross_entropy(jnp.asarray(x, jnp.float64), jnp.array(t), reduction="none"))
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)   # float32 against torch's float32 formula
  np.testing.assert_allclose(np.asarray(got), exact, rtol=5e-4, atol=1e-6)  # f32 log(1 + tiny) is torch's limit


def test_cross_entropy_confident_row_matches_torch():
  torch = pytest.importorskip("torch")
  x = [[50.0, 40.0], [1e4, -1e4], [0.0, 30.0]]
  t = [0, 0, 1]
  want = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t), reduction="none").numpy()
  got = L.cross_entropy(jnp.asarray(x, jnp.float32), jnp.array(t), reduction="none")
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=0)   # float32 on both sides: float32 parity


def test_soft_margin_gradient_in_the_tail_is_not_flushed_to_zero():
  # d/dx log(1 + exp(-x)) = -sigmoid(-x) = -exp(-20) / (1 + exp(-20)) at x = 20 (torch: -2.0612e-9)
  g = jax.grad(lambda a: L.soft_margin_loss(a, jnp.ones_like(a), reduction="sum"))(jnp.asarray([20.0, 200.0], jnp.float32))
  want = [-math.exp(-20) / (1 + math.exp(-20)), -math.exp(-200)]
  np.testing.assert_allclose(np.asarray(g, np.float64), np.float32(want), rtol=1e-6)   # float32 gradient (measured equal)
  gx = jax.grad(lambda a: L.soft_margin_loss(a, jnp.ones_like(a), reduction="sum"))(_f64([-800.0]))
  assert float(gx[0]) == -1.0


# --- clear errors for weak inputs ---------------------------------------------------------------

def test_cross_entropy_0d_input_says_what_it_wants():
  with pytest.raises(ValueError, match=r"cross_entropy: expected `input` with at least 1 dimension"):
    L.cross_entropy(_f64(1.0), jnp.array(0))


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "focal_loss"])
def test_zero_classes_raise_clearly(name, jit):
  fn = CLASS_LOSSES[name]
  call = jax.jit(fn) if jit else fn
  with pytest.raises(ValueError, match=rf"{name}: expected at least one class"):
    call(jnp.zeros((2, 0), jnp.float64), jnp.zeros((2,), jnp.int32))


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "focal_loss", "multi_margin_loss"])
def test_bool_class_targets_raise(name):
  with pytest.raises(TypeError, match=rf"{name}: expected .*integer.*got dtype bool"):
    CLASS_LOSSES[name](X3, jnp.array([True, False, True, False]))


def test_label_smoothing_nan_raises():
  with pytest.raises(ValueError, match=r"cross_entropy: expected `label_smoothing` in \[0.0, 1.0\], got nan"):
    L.cross_entropy(X3, jnp.array([0, 1, 2, 0]), label_smoothing=NAN)


def test_traced_label_smoothing_and_p_raise_typeerror():
  with pytest.raises(TypeError, match=r"cross_entropy: expected `label_smoothing` to be a static Python number"):
    jax.jit(lambda ls: L.cross_entropy(X3, jnp.array([0, 1, 2, 0]), label_smoothing=ls))(0.1)
  a = _f64([[1.0, 2.0]])
  with pytest.raises(TypeError, match=r"triplet_margin_loss: expected `p` to be a static Python number"):
    jax.jit(lambda p: L.triplet_margin_loss(a, a, a, p=p))(2.0)


@pytest.mark.parametrize("fn, name", [(L.huber_loss, "delta"), (L.smooth_l1_loss, "beta")])
def test_traced_huber_delta_and_smooth_l1_beta_raise_typeerror(fn, name):
  x = _f64([0.5, 3.0])
  with pytest.raises(TypeError, match=rf"{fn.__name__}: expected `{name}` to be a static Python number"):
    jax.jit(lambda v: fn(x, jnp.zeros_like(x), **{name: v}))(1.0)
  with pytest.raises(TypeError, match=rf"{fn.__name__}: expected `{name}` to be a Python number, got 'one'"):
    fn(x, jnp.zeros_like(x), **{name: "one"})
  # a concrete array is a number: the same value as the Python float
  assert float(fn(x, jnp.zeros_like(x), **{name: jnp.asarray(2.0)})) == float(fn(x, jnp.zeros_like(x), **{name: 2.0}))


@pytest.mark.parametrize("flag", ["yes", 1, None])
def test_kl_div_log_target_must_be_bool(flag):
  with pytest.raises(TypeError, match=r"kl_div: expected `log_target` to be a bool"):
    L.kl_div(_f64([-1.0]), _f64([0.5]), log_target=flag)


def test_smooth_l1_beta0_shape_error_names_smooth_l1():
  with pytest.raises(ValueError, match=r"^smooth_l1_loss: expected"):
    L.smooth_l1_loss(_f64([1.0, 2.0]), _f64([1.0]), beta=0.0)
