"""Semantic facts and bad-input errors for losslab_jax/losses/_margin.py.

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


def _a(x, dtype=f64):
  return jnp.asarray(x, dtype)


# --- margin_ranking_loss ------------------------------------------------------------------------

def test_margin_ranking_values_and_margins():
  x1, x2, y = _a([1.0, 2.0, 0.5]), _a([2.0, 1.0, 0.5]), _a([1.0, 1.0, -1.0])
  # -y (x1 - x2) + margin = [1, -1, 0] + margin
  assert_close(L.margin_ranking_loss(x1, x2, y, reduction="none"), [1.0, 0.0, 0.0])
  assert_close(L.margin_ranking_loss(x1, x2, y, margin=0.5, reduction="sum"), 1.5 + 0.0 + 0.5)
  assert_close(L.margin_ranking_loss(x1, x2, y, margin=-0.5), 0.5 / 3)


def test_margin_ranking_gradient_at_kink_is_zero_like_torch():
  # torch: x1 == x2, margin 0 gives grad -0 / 0 (measured), not jnp.maximum's 0.5
  g1, g2 = jax.grad(lambda a, b: L.margin_ranking_loss(a, b, _a([1.0, -1.0]), reduction="sum"), (0, 1))(
      _a([1.0, 2.0]), _a([1.0, 2.0]))
  assert_close(g1, [0.0, 0.0])
  assert_close(g2, [0.0, 0.0])


def test_margin_ranking_dtype_follows_torch_promotion():
  x = jnp.ones(3, jnp.float32)
  assert L.margin_ranking_loss(x, x, jnp.ones(3, jnp.int32)).dtype == jnp.float32
  assert L.margin_ranking_loss(x, x, jnp.ones(3, f64)).dtype == f64  # torch: float64 target promotes


def test_margin_ranking_bad_inputs():
  x = _a([1.0, 2.0])
  with pytest.raises(ValueError, match=r"margin_ranking_loss: expected `input1` and `target` to have the same shape, got \(2,\) and \(1,\)"):
    L.margin_ranking_loss(x, x, _a([1.0]))
  with pytest.raises(ValueError, match=r"`input1` and `input2` to have the same shape, got \(2,\) and \(2, 1\)"):
    L.margin_ranking_loss(x, x[:, None], x)
  with pytest.raises(TypeError, match=r"expected `target` to be an integer or floating array.*got dtype bool"):
    L.margin_ranking_loss(x, x, jnp.array([True, False]))
  with pytest.raises(TypeError, match=r"expected `input1` to be a floating array, got dtype int"):
    L.margin_ranking_loss(jnp.array([1, 2]), x, x)
  with pytest.raises(TypeError):  # margin is keyword-only: torch's positional margin fails loudly
    L.margin_ranking_loss(x, x, x, 0.5)
  with pytest.raises(ValueError, match="reduction"):
    L.margin_ranking_loss(x, x, x, reduction="avg")


# --- hinge_embedding_loss -----------------------------------------------------------------------

def test_hinge_embedding_both_terms_outside_pm1():
  # torch 2.15: x=[0.3, -0.2, 2.0], y=[2, 0, 1] -> [1, 1, 2]: y=2 and y=0 get x + max(0, 1 - x)
  out = L.hinge_embedding_loss(_a([0.3, -0.2, 2.0]), _a([2.0, 0.0, 1.0]), reduction="none")
  assert_close(out, [1.0, 1.0, 2.0])


def test_hinge_embedding_values_margin_and_int_target():
  x, y = _a([0.3, 2.0, 0.5]), jnp.array([1, -1, -1])
  assert_close(L.hinge_embedding_loss(x, y, reduction="sum"), 0.3 + 0.0 + 0.5)
  assert_close(L.hinge_embedding_loss(x, y, margin=2.5), (0.3 + 0.5 + 2.0) / 3)
  assert_close(L.hinge_embedding_loss(x, y, margin=-1.0, reduction="none"), [0.3, 0.0, 0.0])


def test_hinge_embedding_kink_gradient_and_dtype():
  # torch: x=[1, 0.5, 2], y=[-1, -1, 0.5] -> grad [0, -1, 1] (0 at margin - x == 0)
  g = jax.grad(lambda x: L.hinge_embedding_loss(x, _a([-1.0, -1.0, 0.5]), reduction="sum"))(_a([1.0, 0.5, 2.0]))
  assert_close(g, [0.0, -1.0, 1.0])
  # target is only compared, so a float64 target does not promote (torch: float32 out)
  assert L.hinge_embedding_loss(jnp.ones(2, jnp.float32), jnp.ones(2, f64)).dtype == jnp.float32


def test_hinge_embedding_bad_inputs():
  with pytest.raises(ValueError, match=r"hinge_embedding_loss: expected `input` and `target` to have the same shape, got \(3, 4\) and \(4,\)"):
    L.hinge_embedding_loss(jnp.ones((3, 4)), jnp.ones(4))
  with pytest.raises(TypeError, match="expected `input` to be a floating array"):
    L.hinge_embedding_loss(jnp.ones(3, jnp.int32), jnp.ones(3))
  with pytest.raises(TypeError):
    L.hinge_embedding_loss(jnp.ones(3), jnp.ones(3), 1.0)


# --- multi_margin_loss --------------------------------------------------------------------------

X4 = [[0.1, 0.2, 0.4, 0.8]]


def test_multi_margin_torch_doc_example():
  assert_close(L.multi_margin_loss(_a(X4), jnp.array([3])), (0.3 + 0.4 + 0.6) / 4)


def test_multi_margin_weight_p2_and_margin():
  x, y = _a([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]]), jnp.array([0, 1])
  w = _a([2.0, 3.0, 4.0])
  # row 0: w_0 (2 + 3) / 3 = 10/3; row 1: w_1 (1 + 1) / 3 = 2; torch: [3.3333, 2.0], mean 2.6667
  assert_close(L.multi_margin_loss(x, y, weight=w, reduction="none"), [10 / 3, 2.0])
  assert_close(L.multi_margin_loss(x, y, weight=w), (10 / 3 + 2.0) / 2)  # plain mean, not / sum(w)
  # p=2, margin=-0.5: row 0 (0.5**2 + 1.5**2) / 3; row 1 max(0, -0.5)=0; torch: [0.8333, 0]
  assert_close(L.multi_margin_loss(x, y, p=2, margin=-0.5, reduction="none"), [2.5 / 3, 0.0])


def test_multi_margin_kink_gradient():
  # torch: x=[1, 2, 3], y=1 -> grad [0, -1/3, 1/3] (z == 0 for class 0 gives 0)
  g = jax.grad(lambda x: L.multi_margin_loss(x, jnp.array([1]), reduction="sum"))(_a([[1.0, 2.0, 3.0]]))
  assert_close(g, [[0.0, -1 / 3, 1 / 3]])


def test_multi_margin_output_shapes_follow_target():
  x = _a([0.1, 0.2, 0.4, 0.8])
  assert L.multi_margin_loss(x, jnp.array(3), reduction="none").shape == ()
  assert L.multi_margin_loss(x, jnp.array([3]), reduction="none").shape == (1,)
  assert L.multi_margin_loss(_a(X4), jnp.array(3), reduction="none").shape == ()  # torch allows it too


def test_multi_margin_bad_inputs():
  x, y = _a(np.zeros((3, 4))), jnp.array([0, 1, 2])
  with pytest.raises(TypeError, match=r"multi_margin_loss: expected `target` to hold integer class indices, got dtype float"):
    L.multi_margin_loss(x, y.astype(f64))
  with pytest.raises(TypeError, match="expected `input` to be a floating array, got dtype int"):
    L.multi_margin_loss(y[:, None] * jnp.ones((3, 4), jnp.int32), y)
  with pytest.raises(ValueError, match=r"expected `p` to be 1 or 2, got 3"):
    L.multi_margin_loss(x, y, p=3)
  with pytest.raises(ValueError, match=r"expected `weight` of shape \(4,\), one per class, got \(3,\)"):
    L.multi_margin_loss(x, y, weight=jnp.ones(3))
  with pytest.raises(ValueError, match=r"expected `weight` of shape \(4,\), one per class, got \(1, 4\)"):
    L.multi_margin_loss(x, y, weight=jnp.ones((1, 4)))
  with pytest.raises(TypeError, match="expected `weight` to be a floating array"):
    L.multi_margin_loss(x, y, weight=jnp.ones(4, jnp.int32))
  with pytest.raises(ValueError, match=r"expected `target` of shape \(3,\) for `input` of shape \(3, 4\), got \(2,\)"):
    L.multi_margin_loss(x, y[:2])
  with pytest.raises(ValueError, match=r"expected `input` with 0 or 1 or 2 dimensions \(\(\), \(C,\) or \(N, C\), class axis last\), got shape \(2, 3, 4\)"):
    L.multi_margin_loss(jnp.zeros((2, 3, 4)), y[:2])
  with pytest.raises(ValueError, match="reduction"):
    L.multi_margin_loss(x, y, reduction="batchmean")
  with pytest.raises(TypeError):
    L.multi_margin_loss(x, y, 1)


def test_multi_margin_out_of_range_eager_raises_jit_gives_nan():
  x = _a(np.zeros((3, 4)))
  for bad in (4, -1):
    y = jnp.array([0, bad, 2])
    with pytest.raises(ValueError, match=rf"multi_margin_loss: expected `target` class indices in \[0, 4\), got \[{bad}\]"):
      L.multi_margin_loss(x, y)
    out = jax.jit(lambda a, b: L.multi_margin_loss(a, b, reduction="none"))(x, y)
    assert np.isnan(out[1]) and np.isfinite(np.asarray(out)[[0, 2]]).all()
  err, _ = jax.jit(L.checked(L.multi_margin_loss))(x, jnp.array([0, 4, 2]))
  assert "class indices in [0, 4)" in str(err.get())


# --- multilabel_margin_loss ---------------------------------------------------------------------

def test_multilabel_margin_torch_doc_example_and_duplicates():
  x = _a(X4)
  assert_close(L.multilabel_margin_loss(x, jnp.array([[3, 0, -1, 1]])), 0.85)
  # torch 2.15: [[3, 3, -1, 1]] -> 0.65 = 2 x [[3, -1, -1, 1]] (0.325): the listed 3 counts twice
  assert_close(L.multilabel_margin_loss(x, jnp.array([[3, 3, -1, 1]])), 0.65)
  assert_close(L.multilabel_margin_loss(x, jnp.array([[3, -1, -1, 1]])), 0.325)


def test_multilabel_margin_prefix_rules():
  x = _a([[0.1, 0.2, 0.4, 0.8], [1.0, -1.0, 0.5, 0.0]])
  y = jnp.array([[-1, 3, 0, 1], [2, -1, 0, 0]])
  # row 0 starts with -1: 0; row 1 targets {2}: (1-0.5+1) + max(0, 1-0.5-1) + (1-0.5+0) = 2.0, / 4
  assert_close(L.multilabel_margin_loss(x, y, reduction="none"), [0.0, 0.5])
  # what follows the first -1 is ignored
  y2 = jnp.array([[-1, 0, 1, 2], [2, -1, 3, 1]])
  assert_close(L.multilabel_margin_loss(x, y2, reduction="none"), [0.0, 0.5])
  # a full row (no -1): every class is a target, no non-target class, loss 0
  assert_close(L.multilabel_margin_loss(x[:1], jnp.array([[0, 1, 2, 3]])), 0.0)
  # 1-D input: scalar, as torch
  assert L.multilabel_margin_loss(x[0], y[1], reduction="none").shape == ()


def test_multilabel_margin_kink_gradient():
  # torch: x=[1, 0, 3], y=[0, -1, 0] -> grad [-1/3, 0, 1/3] (z == 0 for class 1 gives 0)
  g = jax.grad(lambda x: L.multilabel_margin_loss(x, jnp.array([[0, -1, 0]]), reduction="sum"))(_a([[1.0, 0.0, 3.0]]))
  assert_close(g, [[-1 / 3, 0.0, 1 / 3]])


def test_multilabel_margin_bad_inputs():
  x = _a(np.zeros((2, 3)))
  with pytest.raises(TypeError, match="multilabel_margin_loss: expected `target` to hold integer class indices, got dtype float"):
    L.multilabel_margin_loss(x, jnp.zeros((2, 3)))
  with pytest.raises(ValueError, match=r"expected `input` and `target` to have the same shape, got \(2, 3\) and \(2, 2\)"):
    L.multilabel_margin_loss(x, jnp.zeros((2, 2), jnp.int32))
  with pytest.raises(ValueError, match=r"expected `input` and `target` to have the same shape, got \(\) and \(2,\)"):
    L.multilabel_margin_loss(_a(1.0), jnp.array([0, -1]))  # a 0-d input takes a target () or (1,)
  with pytest.raises(TypeError, match="expected `input` to be a floating array"):
    L.multilabel_margin_loss(jnp.zeros((2, 3), jnp.int32), jnp.zeros((2, 3), jnp.int32))


def test_multilabel_margin_out_of_range_eager_raises_jit_gives_nan():
  x = _a(np.zeros((2, 3)))
  # torch rejects any entry outside [-1, C), also after the first -1 and also -2
  for bad_row in ([0, 3, -1], [0, -2, 1], [0, -1, 7]):
    y = jnp.array([bad_row, [1, -1, 0]])
    with pytest.raises(ValueError, match=r"multilabel_margin_loss: expected `target` class indices in \[-1, 3\)"):
      L.multilabel_margin_loss(x, y)
    out = jax.jit(lambda a, b: L.multilabel_margin_loss(a, b, reduction="none"))(x, y)
    assert np.isnan(out[0]) and np.isfinite(out[1])


@pytest.mark.parametrize("target", [jnp.array(0), jnp.array([0])], ids=["0d", "1d"])
def test_0d_input_is_one_class_like_torch(target):
  # torch: a 0-d input is one sample of one class; no j != y, so loss 0 and gradient 0
  x = _a(0.7)
  for red in ("none", "mean", "sum"):
    out = L.multi_margin_loss(x, target, reduction=red, p=2, weight=_a([3.0]))
    assert out.shape == (target.shape if red == "none" else ()) and float(jnp.sum(out)) == 0.0
    out = L.multilabel_margin_loss(x, target, reduction=red)
    assert out.shape == () and float(out) == 0.0
  assert float(jax.grad(lambda a: L.multi_margin_loss(a, target))(x)) == 0.0
  assert float(L.multilabel_margin_loss(x, jnp.array(-1))) == 0.0
  with pytest.raises(ValueError, match=r"class indices in \[0, 1\), got \[1\]"):
    L.multi_margin_loss(x, jnp.array(1))
