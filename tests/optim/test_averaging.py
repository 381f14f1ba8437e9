"""averaged_params / ema_multi_avg_fn / swa_multi_avg_fn / update_bn: torch's semantics by hand
(first update copies, n_averaged counts, torch's float32 SWA weight), NaN, jit, nnx batch statistics,
update_bn against torch (trajectories: parity case ``averaged_params``)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import losslab_jax as ll
from tests.helpers import assert_close


def _feed(avg, values, dtype=jnp.float64):
  s = avg.init(jnp.zeros(1, dtype))
  for v in values:
    s = avg.update(s, jnp.array([v], dtype))
  return s


def test_first_update_copies_and_n_averaged_counts():
  for fn in (None, ll.optim.swa_multi_avg_fn(), ll.optim.ema_multi_avg_fn(0.5)):
    s = _feed(ll.optim.averaged_params(fn), [7.0])
    assert float(s.averaged[0]) == 7.0 and int(s.n_averaged) == 1
  s = _feed(ll.optim.averaged_params(ll.optim.ema_multi_avg_fn(0.5)), [7.0, 1.0, 3.0])
  assert float(s.averaged[0]) == 3.5 and int(s.n_averaged) == 3   # 7 -> 4 -> 3.5


def test_swa_weight_is_rounded_to_float32_as_torch_and_the_default_is_exact():
  # torch's get_swa_multi_avg_fn lerps with 1 / (n_averaged + 1) computed in float32 (torch gives
  # 0.3333333432674408 here), its CPU default divides in the parameter dtype (0.3333333333333333).
  swa = _feed(ll.optim.averaged_params(ll.optim.swa_multi_avg_fn()), [0.0, 0.0, 1.0])
  default = _feed(ll.optim.averaged_params(), [0.0, 0.0, 1.0])
  assert float(swa.averaged[0]) == 0.3333333432674408
  assert float(default.averaged[0]) == 1 / 3


def test_ema_decay_checks_use_torch_wording():
  for bad in (-0.1, 1.5, math.nan):
    with pytest.raises(ValueError, match=r"Invalid decay value .* provided. Please provide a value in \[0,1\] range."):
      ll.optim.ema_multi_avg_fn(bad)


def test_nan_propagates_jit_and_dtypes():
  avg = ll.optim.averaged_params(ll.optim.ema_multi_avg_fn(0.9))
  params = {"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(2, jnp.float32), "n": jnp.array(4, jnp.int32)}
  update = jax.jit(avg.update)
  s = avg.init(params)
  for _ in range(2):
    s = update(s, params)
  assert {k: v.dtype for k, v in s.averaged.items()} == {k: v.dtype for k, v in params.items()}
  s = update(s, {**params, "b": jnp.array([jnp.nan, 1.0], jnp.float32)})
  assert math.isnan(float(s.averaged["b"][0])) and float(s.averaged["b"][1]) == 1.0
  assert update._cache_size() == 1


class _Net(nnx.Module):
  def __init__(self):
    self.lin = nnx.Linear(3, 2, rngs=nnx.Rngs(0), param_dtype=jnp.float32)
    self.bn = nnx.BatchNorm(2, rngs=nnx.Rngs(0), param_dtype=jnp.float32, use_running_average=False)

  def __call__(self, x):
    return self.bn(self.lin(x))


def test_use_buffers_counterpart_averages_nnx_batch_stats():
  net = _Net()
  avg = ll.optim.averaged_params()
  s = avg.init(nnx.state(net, nnx.Any(nnx.Param, nnx.BatchStat)))
  rng = np.random.default_rng(0)
  means = []
  for _ in range(3):
    net(jnp.asarray(rng.standard_normal((4, 3)), jnp.float32))
    means.append(np.asarray(net.bn.mean[...]))
    s = avg.update(s, nnx.state(net, nnx.Any(nnx.Param, nnx.BatchStat)))
  eval_net = nnx.clone(net)
  nnx.update(eval_net, s.averaged)
  # float32 batch statistics: the running average and numpy's mean round differently (measured 6.8e-8)
  assert_close(eval_net.bn.mean[...], np.mean(means, axis=0), rtol=1e-6)


def test_update_bn_matches_torch():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(1)
  batches = [(rng.standard_normal((5, 3)) * 2 + 1).astype(np.float32) for _ in range(4)]
  net = _Net()
  net.bn.use_running_average = True
  ll.optim.update_bn([(jnp.asarray(b), 0) for b in batches], net)
  assert net.bn.use_running_average is True and net.bn.momentum == 0.99   # restored

  lin = torch.nn.Linear(3, 2)
  with torch.no_grad():
    lin.weight.copy_(torch.tensor(np.asarray(net.lin.kernel[...]).T))
    lin.bias.copy_(torch.tensor(np.asarray(net.lin.bias[...])))
  tnet = torch.nn.Sequential(lin, torch.nn.BatchNorm1d(2))
  torch.optim.swa_utils.update_bn([(torch.tensor(b), 0) for b in batches], tnet)
  # float32 models on both sides: float32 parity's 1e-5 (measured worst 1.6e-7 relative)
  assert_close(net.bn.mean[...], tnet[1].running_mean.numpy(), rtol=1e-5, atol=1e-6)
  assert_close(net.bn.var[...], tnet[1].running_var.numpy(), rtol=1e-5)
  assert type(net.bn) is nnx.BatchNorm and "ll_reduced_count" not in vars(net.bn)
  biased = _Net()
  ll.optim.update_bn([jnp.asarray(b) for b in batches], biased, forward=nnx.jit(lambda m, x: m(x)), unbiased=False)
  m = 5   # reduced elements per batch: nnx's own (biased) convention is torch's times (m - 1) / m
  assert_close(np.asarray(biased.bn.var[...]) * m / (m - 1), tnet[1].running_var.numpy(), rtol=1e-5)


def test_update_bn_without_batchnorm_is_a_no_op():
  lin = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
  ll.optim.update_bn([jnp.ones((1, 2))], lin)
