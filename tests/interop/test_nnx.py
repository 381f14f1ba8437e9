"""A torch run continued mid-run in flax.nnx: copy_weights + nnx_optimizer_from_torch, then both keep training.

JAX computes its own gradients after the switch; every parameter is compared with torch's after
every step (float64, parity's relative error judged against each element's magnitude so far).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import losslab_jax as ll
import losslab_jax.interop.torch as llt
from parity._compare import trajectory_errors


@pytest.fixture
def torch():
  torch = pytest.importorskip("torch")
  threads = torch.get_num_threads()
  torch.set_num_threads(1)          # tiny models: thread start-up costs more than it saves
  yield torch
  torch.set_num_threads(threads)


def _torch_params(t):
  return {k: v.detach().numpy().copy() for k, v in t.named_parameters()}


def _nnx_params(wm, m):
  return wm.tree_to_torch(nnx.state(m, nnx.Param))


def _continue(torch_step, jax_step, wm, t, m, steps):
  start = _torch_params(t)
  tt, jt = [], []
  for _ in range(steps):
    torch_step()
    jax_step()
    tt.append(_torch_params(t))
    jt.append(_nnx_params(wm, m))
  return max(e.rel for e in trajectory_errors([start, *jt], [start, *tt]))


def test_cnn_with_batchnorm_continues_in_flax(torch):
  """SGD Nesterov + warmup-then-cosine (per step), BatchNorm in training mode: torch's trajectory to 1e-10.

  BatchNorm's running variance: torch updates it with the *unbiased* batch variance, flax with the
  biased one, so after the switch the two running variances differ (by design, reported here);
  the parameters and running means agree.
  """
  nn = torch.nn
  torch.manual_seed(0)
  t = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1),
                    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5)).double()

  class N(nnx.Module):
    def __init__(self, rngs):
      self.layers = nnx.List([
          nnx.Conv(2, 4, (3, 3), padding="VALID", rngs=rngs),
          nnx.BatchNorm(4, momentum=0.9, epsilon=1e-5, rngs=rngs),      # flax momentum = 1 - torch's
          None,
          nnx.Conv(4, 3, (3, 3), padding=((1, 1), (1, 1)), rngs=rngs),
          None, None,
          nnx.Linear(3, 5, rngs=rngs)])

    def __call__(self, x):
      L = self.layers  # noqa: N806
      h = nnx.relu(L[1](L[0](x)))
      h = L[3](h).mean(axis=(1, 2))
      return L[6](h)

  S = torch.optim.lr_scheduler  # noqa: N806
  opt = torch.optim.SGD(t.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
  sched = S.SequentialLR(opt, [S.LinearLR(opt, 0.1, total_iters=4), S.CosineAnnealingLR(opt, T_max=20)], [4])
  rng = np.random.default_rng(0)
  x = rng.standard_normal((8, 2, 6, 6))
  y = rng.integers(0, 5, 8)
  xt, yt = torch.from_numpy(x), torch.from_numpy(y)

  def torch_step():
    opt.zero_grad()
    nn.functional.cross_entropy(t(xt), yt).backward()
    opt.step()
    sched.step()

  t.train()
  for _ in range(6):
    torch_step()
  m = nnx.eval_shape(lambda: N(nnx.Rngs(0)))
  wm = llt.copy_weights(t, m, rename={"": "layers"})
  o = llt.nnx_optimizer_from_torch(m, opt, sched, weight_map=wm, steps_per_epoch=1, step_count=6)
  assert int(o.step.get_value()) == 6
  xj, yj = jnp.asarray(x.transpose(0, 2, 3, 1)), jnp.asarray(y)

  @nnx.jit
  def step(m, o):
    def loss(m):
      return optax.softmax_cross_entropy_with_integer_labels(m(xj), yj).mean()

    grads = nnx.grad(loss)(m)
    o.update(m, grads)

  worst = _continue(torch_step, lambda: step(m, o), wm, t, m, 6)
  assert worst <= 1e-10, f"worst relative error {worst:.2e}"
  bn, tbn = m.layers[1], t[1]
  np.testing.assert_allclose(np.asarray(bn.mean.get_value()), tbn.running_mean.numpy(), rtol=1e-10, atol=1e-14)
  var_gap = np.max(np.abs(np.asarray(bn.var.get_value()) - tbn.running_var.numpy()))
  assert var_gap > 1e-6      # biased (flax) vs unbiased (torch) running variance: a real, known difference


def test_transformer_block_continues_in_flax(torch):
  """Embedding, LayerNorm, attention from Linear layers; AdamW without decay on biases/norms/embedding,
  warmup then linear decay (per step), a run continued mid-way: torch's trajectory to 1e-10."""
  nn = torch.nn
  V, D, T = 11, 8, 5  # noqa: N806

  class Block(nn.Module):
    def __init__(self):
      super().__init__()
      self.emb = nn.Embedding(V, D)
      self.ln1 = nn.LayerNorm(D)
      # no key bias: softmax ignores it, so its gradient is rounding noise that Adam would amplify
      self.q, self.k, self.v, self.o = (nn.Linear(D, D, bias=(name != "k")) for name in "qkvo")
      self.ln2 = nn.LayerNorm(D)
      self.head = nn.Linear(D, V)

    def forward(self, tokens):
      h = self.emb(tokens)
      a = self.ln1(h)
      s = self.q(a) @ self.k(a).transpose(-1, -2) / math.sqrt(D)
      h = h + self.o(torch.softmax(s, dim=-1) @ self.v(a))
      return self.head(self.ln2(h))

  class NBlock(nnx.Module):
    def __init__(self, rngs):
      self.emb = nnx.Embed(V, D, param_dtype=jnp.float64, rngs=rngs)
      self.ln1 = nnx.LayerNorm(D, epsilon=1e-5, rngs=rngs)
      self.q, self.k, self.v, self.o = (nnx.Linear(D, D, use_bias=(name != "k"), rngs=rngs) for name in "qkvo")
      self.ln2 = nnx.LayerNorm(D, epsilon=1e-5, rngs=rngs)
      self.head = nnx.Linear(D, V, rngs=rngs)

    def __call__(self, tokens):
      h = self.emb(tokens)
      a = self.ln1(h)
      s = self.q(a) @ jnp.swapaxes(self.k(a), -1, -2) / math.sqrt(D)
      h = h + self.o(jax.nn.softmax(s, axis=-1) @ self.v(a))
      return self.head(self.ln2(h))

  torch.manual_seed(1)
  t = Block().double()
  decay = [p for n, p in t.named_parameters() if n.endswith("weight") and n.split(".")[0] in "qkvohead"]
  rest = [p for n, p in t.named_parameters() if all(p is not d for d in decay)]
  opt = torch.optim.AdamW([{"params": decay}, {"params": rest, "weight_decay": 0.0}], lr=3e-3, weight_decay=0.1)
  S = torch.optim.lr_scheduler  # noqa: N806
  sched = S.SequentialLR(opt, [S.LinearLR(opt, 0.2, total_iters=3), S.LinearLR(opt, 1.0, 0.1, total_iters=20)],
                         [3])
  rng = np.random.default_rng(1)
  tokens = rng.integers(0, V, (4, T))
  target = rng.integers(0, V, (4, T))
  tt, yt = torch.from_numpy(tokens), torch.from_numpy(target)

  def torch_step():
    opt.zero_grad()
    nn.functional.cross_entropy(t(tt).reshape(-1, V), yt.reshape(-1)).backward()
    opt.step()
    sched.step()

  for _ in range(5):
    torch_step()
  m = nnx.eval_shape(lambda: NBlock(nnx.Rngs(0)))
  wm = llt.copy_weights(t, m)
  o = llt.nnx_optimizer_from_torch(m, opt, sched, weight_map=wm)     # 5 == 5: per step is proven
  adam = [s for s in jax.tree.leaves(o.opt_state, is_leaf=lambda s: isinstance(s, ll.optim.AdamState))
          if isinstance(s, ll.optim.AdamState)]
  assert len(adam) == 2                                              # two param groups
  q_kernel = adam[0].exp_avg["q"]["kernel"].get_value()              # flax layout (in, out)
  assert np.array_equal(np.asarray(q_kernel), opt.state[t.q.weight]["exp_avg"].numpy().T)
  tj, yj = jnp.asarray(tokens), jnp.asarray(target)

  @nnx.jit
  def step(m, o):
    def loss(m):
      return optax.softmax_cross_entropy_with_integer_labels(m(tj), yj).mean()

    o.update(m, nnx.grad(loss)(m))

  worst = _continue(torch_step, lambda: step(m, o), wm, t, m, 6)
  assert worst <= 1e-10, f"worst relative error {worst:.2e}"
  # and back: the continued flax state loads into torch and equals torch's own continued state
  sd = llt.optimizer_state_to_torch(o.opt_state, nnx.state(m, nnx.Param), opt, weight_map=wm)
  for i, entry in opt.state_dict()["state"].items():
    np.testing.assert_allclose(sd["state"][i]["exp_avg_sq"].numpy(), entry["exp_avg_sq"].numpy(), rtol=1e-9)
    assert float(sd["state"][i]["step"]) == float(entry["step"]) == 11.0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_optimizer_state_round_trips_through_flax_layouts(torch, dtype):
  """torch state_dict -> nnx param tree (flax layouts, moments transposed like their weights) -> torch: exact."""
  nn = torch.nn
  torch.manual_seed(2)
  t = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(12, 2), nn.LayerNorm(2)).to(getattr(torch, dtype))
  opt = torch.optim.NAdam(t.parameters(), lr=0.01)
  x = torch.randn(3, 2, 4, 4, dtype=getattr(torch, dtype))
  for _ in range(3):
    opt.zero_grad()
    t(x).square().sum().backward()
    opt.step()
  m = nnx.eval_shape(lambda: nnx.Sequential(nnx.Conv(2, 3, (3, 3), padding="VALID", rngs=nnx.Rngs(0)), jnp.ravel,
                                            nnx.Linear(12, 2, rngs=nnx.Rngs(0)),
                                            nnx.LayerNorm(2, epsilon=1e-5, rngs=nnx.Rngs(0))))
  wm = llt.copy_weights(t, m)
  params = nnx.state(m, nnx.Param)
  tx = llt.from_torch_optimizer(opt, weight_map=wm)
  state = llt.optimizer_state_from_torch(tx, opt, params, weight_map=wm)
  nadam = state[2]
  assert np.array_equal(np.asarray(nadam.exp_avg["layers"][0]["kernel"].get_value()),
                        opt.state[t[0].weight]["exp_avg"].numpy().transpose(2, 3, 1, 0))
  sd, back = opt.state_dict(), llt.optimizer_state_to_torch(state, params, opt, weight_map=wm)
  assert sorted(back["state"]) == sorted(sd["state"])
  for i, entry in sd["state"].items():
    assert sorted(entry) == sorted(back["state"][i])
    for key, v in entry.items():
      assert back["state"][i][key].dtype == v.dtype and torch.equal(back["state"][i][key], v), (i, key)
  # without the torch optimizer object nothing names the parameters: refused, not guessed
  with pytest.raises(ValueError, match="with weight_map, expected the torch names"):
    llt.optimizer_state_from_torch(tx, opt.state_dict(), params, weight_map=wm)
  names = [n for n, _ in t.named_parameters()]
  again = llt.optimizer_state_from_torch(tx, opt.state_dict(), params, weight_map=wm, param_names=names)
  assert all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(jax.tree.leaves(state),
                                                                           jax.tree.leaves(again)))
