"""Semantic facts and bad-input errors for losslab_jax/losses/_metric.py.

Expected numbers are hand math or were computed with torch 2.15 (noted where so).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

L = ll.losses
f64 = jnp.float64
TORCH_EPSILON = float(np.float32(1e-12))  # torch's C++ float EPSILON in cosine_embedding_loss


def _a(x, dtype=f64):
  return jnp.asarray(x, dtype)


# --- cosine_embedding_loss ----------------------------------------------------------------------

def test_cosine_values_margin_and_other_labels():
  x1 = _a([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 4.0]])
  x2 = _a([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [3.0, 4.0]])
  y = jnp.array([1, -1, -1, 0])
  c = 1 / np.sqrt(2)
  # y=1: 1 - cos; y=-1: max(0, cos - margin); y=0 (neither): 0
  assert_close(L.cosine_embedding_loss(x1, x2, y, margin=0.5, reduction="none"),
               [1 - c, c - 0.5, 0.0, 0.0], rtol=1e-11)
  assert_close(L.cosine_embedding_loss(x1, x2, y, margin=-0.5, reduction="sum"), (1 - c) + (c + 0.5) + 0.5,
               rtol=1e-11)


def test_cosine_zero_vector_is_cos_zero_with_torch_gradient():
  x1 = _a([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
  x2 = _a([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
  y = jnp.array([1, -1])
  loss, (g1, g2) = jax.value_and_grad(lambda a, b: L.cosine_embedding_loss(a, b, y, reduction="sum"), (0, 1))(x1, x2)
  assert_close(loss, 1.0)
  # d(1 - cos)/dx1 at x1 = 0 is -x2 / sqrt(EPS (|x2|^2 + EPS)); torch f32: [-267261.25, -534522.5, -801783.75]
  want = -np.array([1.0, 2.0, 3.0]) / np.sqrt(TORCH_EPSILON * (14.0 + TORCH_EPSILON))
  assert_close(g1[0], want, rtol=1e-14)
  assert_close(g1[1], [0.0, 0.0, 0.0])
  assert_close(g2, np.zeros((2, 3)))


def test_cosine_identical_inputs_gradient_is_finite_and_tiny():
  x = jnp.asarray(np.random.default_rng(0).standard_normal((5, 4)))
  y = jnp.array([1, -1, 1, -1, 1])
  g1, g2 = jax.grad(lambda a, b: L.cosine_embedding_loss(a, b, y, reduction="sum"), (0, 1))(x, x)
  # the true gradient is 0; both torch and we return float64 rounding noise
  assert np.isfinite(g1).all() and np.abs(g1).max() < 1e-10 and np.abs(g2).max() < 1e-10
  # cos = m / (m + EPS) with m = |x|^2: just below 1
  m = np.sum(np.asarray(x) ** 2, axis=-1)
  cos = m / (m + TORCH_EPSILON)
  # 1 - cos cancels: entries ~1e-12 are known only to a few ulps of 1 (absolute 1e-15); measured error 0
  assert_close(L.cosine_embedding_loss(x, x, y, reduction="none"), np.where(np.asarray(y) == 1, 1 - cos, cos),
               rtol=1e-12, atol=1e-15)


def test_cosine_1d_inputs_with_0d_target_and_dtypes():
  out = L.cosine_embedding_loss(_a([1.0, 0.0]), _a([0.0, 2.0]), jnp.array(1), reduction="none")
  assert out.shape == () and float(out) == pytest.approx(1.0)
  x32 = jnp.ones((2, 3), jnp.float32)
  assert L.cosine_embedding_loss(x32, x32, jnp.ones(2, f64)).dtype == jnp.float32  # torch: target only compared
  assert L.cosine_embedding_loss(x32, x32.astype(f64), jnp.ones(2)).dtype == f64


def test_cosine_bad_inputs():
  x2d, x1d = jnp.ones((3, 4)), jnp.ones(4)
  with pytest.raises(ValueError, match=r"cosine_embedding_loss: expected 2-D inputs for a 1-D target .*got shapes \(4,\) and \(4,\)"):
    L.cosine_embedding_loss(x1d, x1d, jnp.ones(1))
  with pytest.raises(ValueError, match=r"expected 1-D inputs for a 0-D target .*got shapes \(3, 4\) and \(3, 4\)"):
    L.cosine_embedding_loss(x2d, x2d, jnp.array(1.0))
  with pytest.raises(ValueError, match=r"expected 2-D inputs for a 1-D target .*got shapes \(2, 3, 4\)"):
    L.cosine_embedding_loss(jnp.ones((2, 3, 4)), jnp.ones((2, 3, 4)), jnp.ones(2))
  with pytest.raises(ValueError, match=r"expected a 0-D or 1-D `target`, got shape \(3, 1\)"):
    L.cosine_embedding_loss(x2d, x2d, jnp.ones((3, 1)))
  with pytest.raises(ValueError, match=r"expected `input1` and `input2` to have the same shape, got \(3, 4\) and \(1, 4\)"):
    L.cosine_embedding_loss(x2d, x2d[:1], jnp.ones(3))
  with pytest.raises(ValueError, match=r"expected `target` of shape \(3,\) .*got \(1,\)"):
    L.cosine_embedding_loss(x2d, x2d, jnp.ones(1))
  with pytest.raises(TypeError, match="expected `input2` to be a floating array"):
    L.cosine_embedding_loss(x2d, jnp.ones((3, 4), jnp.int32), jnp.ones(3))
  with pytest.raises(TypeError):
    L.cosine_embedding_loss(x2d, x2d, jnp.ones(3), 0.5)


# --- triplet_margin_loss ------------------------------------------------------------------------

def _trip(anchor, positive, negative, **kw):
  return L.triplet_margin_loss(_a([anchor]), _a([positive]), _a([negative]), **kw)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_triplet_identical_inputs(p):
  # d(a, p) == d(a, n) == ||eps||_p, so the loss is the margin. The anchor's gradient cancels; p and n get
  # -/+ (1/N) d||v||_p/dv at v = eps, i.e. D**(-(p-1)/p) / N per entry (torch 2.15, D=3, N=4: 0.25,
  # 0.1443..., 0.1201... for p=1, 2, 3). With eps=0 every distance is 0 and every gradient is 0, as torch's.
  x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 3)))
  def grads(eps):
    return jax.value_and_grad(lambda a, b, c: L.triplet_margin_loss(a, b, c, p=p, eps=eps, margin=0.7),
                              (0, 1, 2))(x, x, x)
  loss, (ga, gp, gn) = grads(1e-6)
  assert_close(loss, 0.7)
  want = 3 ** (-(p - 1) / p) / 4
  assert_close(ga, np.zeros((4, 3)))
  assert_close(gp, np.full((4, 3), -want), rtol=1e-9)
  assert_close(gn, np.full((4, 3), want), rtol=1e-9)
  loss, grads0 = grads(0.0)
  assert_close(loss, 0.7)
  for g in grads0:
    assert np.abs(g).max() == 0.0


def test_triplet_norms_by_hand():
  # eps=0 so the distances are exact; anchor at the origin
  assert_close(_trip([0.0, 0.0], [1.0, 1.0], [2.0, 0.5], p=1.0, eps=0.0), 1 + 2 - 2.5)
  assert_close(_trip([0.0, 0.0], [3.0, 4.0], [0.0, 6.0], eps=0.0), 1 + 5 - 6 + 0.0)
  assert_close(_trip([0.0, 0.0], [1.0, 1.0], [2.0, 0.0], p=3.0, eps=0.0), 1 + 2 ** (1 / 3) - 2)
  assert_close(_trip([0.0, 0.0], [1.0, -3.0], [2.0, 0.5], p=float("inf"), eps=0.0), 1 + 3 - 2)


def test_triplet_swap_uses_closer_negative():
  a, p, n = [0.0, 0.0], [3.0, 0.0], [4.0, 0.0]  # d(a,p)=3, d(a,n)=4, d(p,n)=1
  assert_close(_trip(a, p, n, eps=0.0), 0.0)
  assert_close(_trip(a, p, n, eps=0.0, swap=True), 1 + 3 - 1)


def test_triplet_swap_tie_splits_gradient_like_torch():
  # torch 2.15, a = p = [0, 0], n = [1, 0], margin 2, eps 0, swap: grads a [0.5, 0], p [0.5, 0], n [-1, 0]
  args = (_a([[0.0, 0.0]]), _a([[0.0, 0.0]]), _a([[1.0, 0.0]]))
  loss, grads = jax.value_and_grad(
      lambda *x: L.triplet_margin_loss(*x, margin=2.0, eps=0.0, swap=True, reduction="sum"), (0, 1, 2))(*args)
  assert_close(loss, 1.0)
  for g, want in zip(grads, ([[0.5, 0.0]], [[0.5, 0.0]], [[-1.0, 0.0]])):
    assert_close(g, want)


def test_triplet_eps_is_added_to_the_difference():
  # ||a - p + eps||: a - p = [-eps, -eps] gives distance 0, not 2 eps * sqrt(2)
  e = 1e-3
  assert_close(_trip([0.0, 0.0], [e, e], [0.0, 0.0], eps=e, margin=1.0), 1.0 + 0.0 - e * np.sqrt(2))


def test_triplet_bad_inputs():
  x = jnp.ones((3, 4))
  with pytest.raises(ValueError, match=r"triplet_margin_loss: expected `margin` > 0, got 0.0"):
    L.triplet_margin_loss(x, x, x, margin=0.0)
  with pytest.raises(ValueError, match=r"expected `margin` > 0, got -1"):
    L.triplet_margin_loss(x, x, x, margin=-1)
  with pytest.raises(ValueError, match=r"expected `p` > 0 \(the norm degree\), got 0"):
    L.triplet_margin_loss(x, x, x, p=0)
  with pytest.raises(ValueError, match=r"expected `anchor` and `negative` to have the same shape, got \(3, 4\) and \(1, 4\)"):
    L.triplet_margin_loss(x, x, x[:1])
  with pytest.raises(ValueError, match=r"expected `anchor` with an embedding axis"):
    L.triplet_margin_loss(_a(1.0), _a(1.0), _a(1.0))
  with pytest.raises(TypeError, match="expected `positive` to be a floating array"):
    L.triplet_margin_loss(x, jnp.ones((3, 4), jnp.int32), x)
  with pytest.raises(TypeError):
    L.triplet_margin_loss(x, x, x, 1.0)


def test_triplet_shapes():
  assert L.triplet_margin_loss(jnp.ones(4), jnp.ones(4), jnp.zeros(4), reduction="none").shape == ()
  assert L.triplet_margin_loss(*(jnp.ones((2, 3, 4)),) * 3, reduction="none").shape == (2, 3)


# --- contrastive_loss ---------------------------------------------------------------------------

def test_contrastive_values_by_hand():
  x1 = _a([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
  x2 = _a([[3.0, 4.0], [0.0, 0.5], [0.0, 2.0]])
  d = np.linalg.norm(np.array([[-3.0, -4.0], [0.0, -0.5], [0.0, -2.0]]) + 1e-6, axis=-1)
  y = _a([0.0, 1.0, 1.0])
  want = [d[0] ** 2, (1 - d[1]) ** 2, 0.0]  # the far dissimilar pair costs nothing
  assert_close(L.contrastive_loss(x1, x2, y, reduction="none"), want, rtol=1e-14)
  assert_close(L.contrastive_loss(x1, x2, y, margin=3.0), ((d[0] ** 2) + (3 - d[1]) ** 2 + (3 - d[2]) ** 2) / 3,
               rtol=1e-14)
  # a soft label interpolates the two terms
  soft = L.contrastive_loss(x1[:2], x2[:2], _a([0.25, 0.25]), reduction="none")
  assert_close(soft, [0.75 * d[0] ** 2, 0.75 * d[1] ** 2 + 0.25 * (1 - d[1]) ** 2], rtol=1e-14)


def test_contrastive_identical_and_zero_distance():
  x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 4)))
  # identical inputs: d = eps * sqrt(D), eps added to the difference
  assert_close(L.contrastive_loss(x, x, jnp.zeros(3), reduction="none"), [4 * 1e-12] * 3, rtol=1e-12)
  # x1 - x2 + 1e-6 == 0 exactly: d == 0, value 0 (similar) or margin^2 (dissimilar), gradient finite (0)
  x1, x2 = jnp.zeros((2, 3), f64), jnp.full((2, 3), 1e-6, f64)
  y = jnp.array([0, 1])
  loss, (g1, g2) = jax.value_and_grad(lambda a, b: L.contrastive_loss(a, b, y, margin=2.0, reduction="sum"), (0, 1))(x1, x2)
  assert_close(loss, 4.0)
  assert np.abs(g1).max() == 0.0 and np.abs(g2).max() == 0.0


def test_contrastive_targets_and_dtypes():
  x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 3)), jnp.float32)
  z = jnp.zeros((4, 3), jnp.float32)
  by_int = L.contrastive_loss(x, z, jnp.array([0, 1, 1, 0]))
  by_bool = L.contrastive_loss(x, z, jnp.array([False, True, True, False]))
  assert by_int.dtype == jnp.float32 and float(by_int) == float(by_bool)
  assert L.contrastive_loss(x, z, jnp.zeros(4, f64)).dtype == f64  # a float target promotes, as in the reference


def test_contrastive_bad_inputs():
  x = jnp.ones((3, 4))
  with pytest.raises(ValueError, match=r"contrastive_loss: expected `target` of shape \(3,\) .*got \(3, 4\)"):
    L.contrastive_loss(x, x, x)
  with pytest.raises(ValueError, match=r"expected `input1` and `input2` to have the same shape, got \(3, 4\) and \(3, 2\)"):
    L.contrastive_loss(x, x[:, :2], jnp.ones(3))
  with pytest.raises(TypeError, match="expected `input1` to be a floating array"):
    L.contrastive_loss(jnp.ones((3, 4), jnp.int32), x, jnp.ones(3))
  with pytest.raises(ValueError, match="reduction"):
    L.contrastive_loss(x, x, jnp.ones(3), reduction="batchmean")
  with pytest.raises(TypeError):
    L.contrastive_loss(x, x, jnp.ones(3), 1.0)
