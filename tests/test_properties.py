"""Generic checks over every public loss: jit, vmap, grad at extremes, dtypes, reductions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.specs import classification, margin, regression, sequence

SPECS = regression.SPECS + classification.SPECS + margin.SPECS + sequence.SPECS
IDS = [s.id for s in SPECS]


def _inputs(spec, dtype=np.float64, seed=0):
  return tuple(jnp.asarray(x) for x in spec.make(np.random.default_rng(seed), dtype))


def _call(spec, args, reduction):
  return spec.fn(*args, **spec.kwargs, reduction=reduction)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_jit_equals_eager(spec):
  args = _inputs(spec)
  for red in spec.reductions:
    eager = _call(spec, args, red)
    jitted = jax.jit(lambda *a: _call(spec, a, red))(*args)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-12, atol=1e-14, equal_nan=True)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_jitted_gradient_equals_eager(spec):
  """parity compares the jitted losses with torch; this ties them to the eager call (float64)."""
  args = _inputs(spec)

  def scalar(*diff_args):
    full = list(args)
    for i, a in zip(spec.diff, diff_args):
      full[i] = a
    return jnp.sum(_call(spec, full, "none" if "none" in spec.reductions else spec.reductions[0]))

  argnums = tuple(range(len(spec.diff)))
  primals = [args[i] for i in spec.diff]
  eager = jax.grad(scalar, argnums=argnums)(*primals)
  jitted = jax.jit(jax.grad(scalar, argnums=argnums))(*primals)
  for e, j in zip(eager, jitted):
    np.testing.assert_allclose(np.asarray(j), np.asarray(e), rtol=1e-12, atol=1e-14, equal_nan=True)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_vmap_equals_loop(spec):
  if not spec.vmap_ok:
    pytest.skip("per-example call not meaningful for this loss")
  batches = [_inputs(spec, seed=s) for s in range(3)]
  stacked = tuple(jnp.stack(parts) for parts in zip(*batches))
  for red in spec.reductions:
    v = jax.vmap(lambda *a: _call(spec, a, red))(*stacked)
    loop = jnp.stack([_call(spec, b, red) for b in batches])
    np.testing.assert_allclose(np.asarray(v), np.asarray(loop), rtol=1e-12, atol=1e-14, equal_nan=True)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_grad_is_finite(spec):
  for args in [_inputs(spec)] + ([tuple(jnp.asarray(x) for x in spec.extreme(np.float64))] if spec.extreme else []):
    red = spec.extreme_reduction
    def scalar(*d, args=args):
      full = list(args)
      for i, a in zip(spec.diff, d):
        full[i] = a
      return jnp.sum(_call(spec, tuple(full), red))
    val = scalar(*[args[i] for i in spec.diff])
    grads = jax.grad(scalar, argnums=tuple(range(len(spec.diff))))(*[args[i] for i in spec.diff])
    assert np.isfinite(np.asarray(val)).all(), f"non-finite value {val}"
    for g in grads:
      assert np.isfinite(np.asarray(g)).all(), f"non-finite gradient {g}"


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_nan_input_gives_nan_value_and_gradient(spec):
  """A NaN in any differentiated input makes the loss NaN and its gradient non-finite.

  Guards like ``where(z > 0, z, 0)`` or ``where(s > 0, sqrt(s), 0)`` return a plausible number for
  NaN; torch returns NaN. One batch entry (``spec.nan_row``) of one input at a time is NaN. Under
  ``jit``, because an eager call may raise instead (a value check: NaN is not a probability).
  """
  args = _inputs(spec)
  for pos in spec.diff:
    poisoned = np.array(args[pos])
    poisoned[spec.nan_row] = np.nan
    def scalar(a, pos=pos):
      full = list(args)
      full[pos] = a
      return _call(spec, tuple(full), "sum")
    val, g = jax.jit(jax.value_and_grad(scalar))(jnp.asarray(poisoned))
    assert np.isnan(np.asarray(val)), f"input {pos}: NaN in, value {val}"
    assert not np.isfinite(np.asarray(g)).all(), f"input {pos}: NaN in, finite gradient {g}"


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32", "float64"])
def test_dtype_preserved(spec, dtype):
  if dtype in ("bfloat16", "float16") and not spec.low_precision:
    pytest.skip("loss documented as float32/float64 only")
  dt = jnp.dtype(dtype)
  args = tuple(jnp.asarray(x).astype(dt) if np.issubdtype(np.asarray(x).dtype, np.floating) else jnp.asarray(x)
               for x in spec.make(np.random.default_rng(0), np.float32))
  for red in spec.reductions:
    out = _call(spec, args, red)
    assert out.dtype == dt, f"reduction={red}: {dtype} in, {out.dtype} out"
    assert np.isfinite(np.asarray(out, dtype=np.float64)).all()
  if dtype == "float64":
    return   # float64 is the reference below; its dtype and finiteness are checked above
  # Low precision is computed stably: close to the float64 result on the very same input values
  # (the low-precision inputs cast up exactly), so only the computation's rounding is measured.
  # Tolerances are a few units of roundoff of the dtype (measured worst relative error, sum
  # reduction, all specs): float32 1.5e-7 (target 1e-5, as parity); float16 4.2e-4 (unit roundoff
  # 4.9e-4, the output itself is rounded to float16); bfloat16 4.4e-3 (unit roundoff 3.9e-3).
  ref = _call(spec, tuple(a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a for a in args),
              "sum")
  got = _call(spec, args, "sum")
  tol = {"bfloat16": 2e-2, "float16": 3e-3, "float32": 1e-5}[dtype]
  np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(ref, np.float64), rtol=tol, atol=0)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_reductions_agree_with_none(spec):
  args = _inputs(spec)
  if "none" not in spec.reductions:
    pytest.skip("no elementwise form")
  none = np.asarray(_call(spec, args, "none"))
  if spec.sum_of_none and "sum" in spec.reductions:
    np.testing.assert_allclose(np.asarray(_call(spec, args, "sum")), none.sum(), rtol=1e-12, atol=1e-14)
  if spec.mean_is_plain_mean and "mean" in spec.reductions:
    np.testing.assert_allclose(np.asarray(_call(spec, args, "mean")), none.mean(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_unknown_reduction_raises(spec):
  with pytest.raises(ValueError, match="reduction"):
    _call(spec, _inputs(spec), "avg")
