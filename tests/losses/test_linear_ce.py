"""linear_cross_entropy: equal to softmax cross-entropy of x @ W.T + b (an independent jnp reference,
differentiated by JAX's autodiff), for every chunk size; edge cases; memory of the compiled program."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losslab_jax as ll
from tests.helpers import assert_close

L = ll.losses
N, H, C = 10, 6, 7


def _reference(x, w, b, t, cw=None, ignore_index=-100, eps=0.0, reduction="mean"):
  """torch's cross_entropy formula on the full logits, written directly (no losslab code)."""
  z = x @ w.T + b[None, :]
  lp = z - jax.scipy.special.logsumexp(z, axis=-1, keepdims=True)
  keep = t != ignore_index
  ts = jnp.where(keep, t, 0)
  cw = jnp.ones((C,), x.dtype) if cw is None else cw
  w_t = cw[ts]
  picked = jnp.take_along_axis(lp, ts[:, None], axis=1)[:, 0]
  loss = (1 - eps) * w_t * -picked + (eps / C) * -jnp.sum(lp * cw[None, :], axis=-1)
  loss = jnp.where(keep, loss, 0.0)
  if reduction == "none":
    return loss
  if reduction == "sum":
    return jnp.sum(loss)
  return jnp.sum(loss) / jnp.sum(jnp.where(keep, w_t, 0.0))


def _inputs(seed=0, dtype=np.float64):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((N, H)), dtype)
  w = jnp.asarray(rng.standard_normal((C, H)) / 2, dtype)
  b = jnp.asarray(rng.standard_normal(C) / 2, dtype)
  cw = jnp.asarray(rng.uniform(0.2, 2.0, C), dtype)
  t = jnp.asarray(rng.integers(0, C, N), jnp.int32).at[jnp.array([2, 7])].set(-100)
  return x, w, b, cw, t


@pytest.mark.parametrize("chunk", [3, 64])
@pytest.mark.parametrize("reduction,eps,weighted", [("mean", 0.0, False), ("sum", 0.2, True),
                                                    ("none", 0.1, True), ("mean", 0.3, True)])
def test_value_and_gradients_match_full_logits(chunk, reduction, eps, weighted):
  x, w, b, cw, t = _inputs()
  cot = jnp.asarray(np.random.default_rng(1).standard_normal((N,) if reduction == "none" else ()))

  def ours(x, w, b, cw):
    out = L.linear_cross_entropy(x, w, t, linear_bias=b, weight=cw if weighted else None,
                                 reduction=reduction, label_smoothing=eps, chunk_size=chunk)
    return jnp.sum(out * cot)

  def ref(x, w, b, cw):
    return jnp.sum(_reference(x, w, b, t, cw if weighted else None, eps=eps, reduction=reduction) * cot)

  v, g = jax.value_and_grad(ours, argnums=(0, 1, 2, 3))(x, w, b, cw)
  rv, rg = jax.value_and_grad(ref, argnums=(0, 1, 2, 3))(x, w, b, cw)
  assert_close(v, rv, rtol=1e-12)
  for a, r in zip(g, rg):  # the class-weight gradient too (torch's weight takes none)
    assert_close(a, r, rtol=1e-10, atol=1e-14)


def test_ignore_index_none_is_minus_100_and_a_valid_class_can_be_ignored():
  x, w, b, _, t = _inputs()
  assert_close(L.linear_cross_entropy(x, w, t, linear_bias=b, ignore_index=None),
               _reference(x, w, b, t), rtol=1e-13)
  t2 = jnp.where(t == -100, 1, t)
  assert_close(L.linear_cross_entropy(x, w, t2, linear_bias=b, ignore_index=1, chunk_size=3),
               _reference(x, w, b, t2, ignore_index=1), rtol=1e-13)


def test_leading_axes_and_unbatched():
  x, w, b, _, t = _inputs()
  t = jnp.where(t < 0, 0, t)
  flat = L.linear_cross_entropy(x, w, t, linear_bias=b, reduction="none")
  assert_close(L.linear_cross_entropy(x.reshape(2, 5, H), w, t.reshape(2, 5), linear_bias=b, reduction="none",
                                      chunk_size=3), flat.reshape(2, 5), rtol=1e-13)
  one = L.linear_cross_entropy(x[3], w, t[3], linear_bias=b)
  assert one.shape == ()
  assert_close(one, flat[3], rtol=1e-13)


def test_all_ignored_mean_is_nan_with_zero_gradient():
  x, w, b, _, _ = _inputs()
  t = jnp.full((N,), -100, jnp.int32)
  v, g = jax.value_and_grad(lambda x, w: L.linear_cross_entropy(x, w, t, linear_bias=b, chunk_size=4), (0, 1))(x, w)
  assert np.isnan(v)
  assert np.all(np.asarray(g[0]) == 0) and np.all(np.asarray(g[1]) == 0)
  assert float(L.linear_cross_entropy(x, w, t, reduction="sum")) == 0.0


def test_nan_in_nan_out_and_extreme_logits():
  x, w, b, _, t = _inputs()
  bad = x.at[4, 0].set(jnp.nan)
  for red in ("mean", "none"):
    v, g = jax.value_and_grad(lambda a: jnp.sum(L.linear_cross_entropy(a, w, t, reduction=red, chunk_size=3)))(bad)
    assert np.isnan(v) and np.isnan(np.asarray(g)).any()
  big = jnp.asarray(np.where(np.random.default_rng(2).random((N, H)) < 0.5, 1e4, -1e4))
  v, g = jax.value_and_grad(lambda a, ww: L.linear_cross_entropy(a, ww, t, chunk_size=4), (0, 1))(big, w)
  assert np.isfinite(v) and all(np.isfinite(np.asarray(a)).all() for a in g)


def test_bad_target_raises_eagerly_and_is_nan_under_jit():
  x, w, _, _, t = _inputs()
  with pytest.raises(ValueError, match="class indices"):
    L.linear_cross_entropy(x, w, t.at[0].set(C))
  v, g = jax.jit(jax.value_and_grad(lambda a, tt: L.linear_cross_entropy(a, w, tt, chunk_size=4)))(x, t.at[0].set(C))
  assert np.isnan(v) and np.isnan(np.asarray(g)[0]).all() and np.isfinite(np.asarray(g)[1:]).all()


def test_jit_vmap_and_dtypes():
  x, w, b, cw, t = _inputs()
  f = lambda a, ww: L.linear_cross_entropy(a, ww, t, linear_bias=b, weight=cw, chunk_size=4)
  assert_close(jax.jit(f)(x, w), f(x, w), rtol=1e-14)
  xs = jnp.stack([x, 2 * x, -x])
  assert_close(jax.vmap(lambda a: f(a, w))(xs), [f(a, w) for a in xs], rtol=1e-13)
  for dt in (jnp.bfloat16, jnp.float32, jnp.float64):
    out = L.linear_cross_entropy(x.astype(dt), w.astype(dt), t, linear_bias=b.astype(dt), chunk_size=3)
    assert out.dtype == dt
    # measured: bf16 1.1e-3 (unit roundoff 3.9e-3), float32 6.3e-8, float64 0
    assert_close(out, _reference(x, w, b, t), rtol={jnp.bfloat16: 3e-2, jnp.float32: 1e-6, jnp.float64: 1e-12}[dt])
    gx = jax.grad(lambda a: L.linear_cross_entropy(a, w.astype(dt), t, chunk_size=3))(x.astype(dt))
    assert gx.dtype == dt


def test_compiled_memory_does_not_grow_with_rows():
  """The compiled forward+backward never holds the (rows, classes) logits: temp memory is set by the chunk."""
  rows, hidden, classes = 1024, 16, 2048
  x = jnp.zeros((rows, hidden), jnp.float32)
  w = jnp.zeros((classes, hidden), jnp.float32)
  t = jnp.zeros((rows,), jnp.int32)

  def temp_bytes(loss):
    compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, w).compile()
    stats = compiled.memory_analysis()
    if stats is None:
      pytest.skip("this backend reports no memory analysis")
    return stats.temp_size_in_bytes

  chunked = temp_bytes(lambda a, ww: L.linear_cross_entropy(a, ww, t, chunk_size=64))
  plain = temp_bytes(lambda a, ww: L.cross_entropy(a @ ww.T, t))
  logits_bytes = rows * classes * 4
  assert plain >= logits_bytes  # the plain path holds at least the logits
  assert chunked < logits_bytes / 4, (chunked, plain)


def test_errors():
  x, w, b, _, t = _inputs()
  with pytest.raises(ValueError, match=r"\(C, H\)"):
    L.linear_cross_entropy(x, w.T, t)
  with pytest.raises(ValueError, match="linear_bias"):
    L.linear_cross_entropy(x, w, t, linear_bias=b[:3])
  with pytest.raises(TypeError, match="probability"):
    L.linear_cross_entropy(x, w, jax.nn.one_hot(jnp.where(t < 0, 0, t), C))
  with pytest.raises(ValueError, match="target"):
    L.linear_cross_entropy(x, w, t[:3])
  with pytest.raises(ValueError, match="chunk_size"):
    L.linear_cross_entropy(x, w, t, chunk_size=0)
  with pytest.raises(ValueError, match="label_smoothing"):
    L.linear_cross_entropy(x, w, t, label_smoothing=1.5)
  with pytest.raises(ValueError, match="reduction"):
    L.linear_cross_entropy(x, w, t, reduction="batchmean")
