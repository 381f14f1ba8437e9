"""copy_weights / WeightMap: torch module -> flax.nnx module, layouts, refusals, exact round trips.

Expected values come from torch: forward passes of the torch layers on the same inputs, and the
torch tensors themselves for the round trips.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import losslab_jax.interop.torch as llt

DTYPES = ["float64", "float32"]


@pytest.fixture
def torch():
  return pytest.importorskip("torch")


def _pairs(torch, dtype):
  """(name, torch layer, nnx layer, input shape in torch layout (N, C, *spatial), input kind).

  The nnx layers are abstract (``nnx.eval_shape``: no initializer runs); copy_weights fills them.
  """
  nn = torch.nn
  torch_layers = [
      ("linear", nn.Linear(5, 4), (3, 5), "features"),
      ("linear_nobias", nn.Linear(5, 4, bias=False), (3, 5), "features"),
      ("conv1d", nn.Conv1d(3, 4, 3, stride=2), (2, 3, 9), "channels"),
      ("conv2d_groups", nn.Conv2d(4, 6, (3, 2), groups=2), (2, 4, 7, 6), "channels"),
      ("conv3d", nn.Conv3d(2, 3, 2), (2, 2, 4, 5, 3), "channels"),
      ("convT1d", nn.ConvTranspose1d(3, 2, 3, stride=2), (2, 3, 5), "channels"),
      ("convT2d", nn.ConvTranspose2d(3, 2, (3, 2), stride=2), (2, 3, 4, 5), "channels"),
      ("convT2d_transpose_kernel", nn.ConvTranspose2d(3, 2, 3, stride=2), (2, 3, 4, 5), "channels"),
      ("batchnorm2d", nn.BatchNorm2d(3), (4, 3, 2, 2), "channels"),
      ("batchnorm1d", nn.BatchNorm1d(3), (4, 3), "features"),
      ("layernorm", nn.LayerNorm(6), (3, 6), "features"),
      ("groupnorm", nn.GroupNorm(2, 4), (2, 4, 3, 3), "channels"),
      ("embedding", nn.Embedding(7, 4), (2, 3), "indices"),
      ("rmsnorm", nn.RMSNorm(6, eps=1e-6), (3, 6), "features"),
  ]

  def build():
    r = nnx.Rngs(0)
    return [
        nnx.Linear(5, 4, rngs=r),
        nnx.Linear(5, 4, use_bias=False, rngs=r),
        nnx.Conv(3, 4, (3,), strides=(2,), padding="VALID", rngs=r),
        nnx.Conv(4, 6, (3, 2), padding="VALID", feature_group_count=2, rngs=r),
        nnx.Conv(2, 3, (2, 2, 2), padding="VALID", rngs=r),
        nnx.ConvTranspose(3, 2, (3,), strides=(2,), padding="VALID", rngs=r),
        nnx.ConvTranspose(3, 2, (3, 2), strides=(2, 2), padding="VALID", rngs=r),
        nnx.ConvTranspose(3, 2, (3, 3), strides=(2, 2), padding="VALID", transpose_kernel=True, rngs=r),
        nnx.BatchNorm(3, use_running_average=True, epsilon=1e-5, rngs=r),
        nnx.BatchNorm(3, use_running_average=True, epsilon=1e-5, rngs=r),
        nnx.LayerNorm(6, epsilon=1e-5, rngs=r),
        nnx.GroupNorm(4, num_groups=2, epsilon=1e-5, rngs=r),
        nnx.Embed(7, 4, param_dtype=dtype, rngs=r),   # Embed fixes its compute dtype at construction
        nnx.RMSNorm(6, epsilon=1e-6, rngs=r),
    ]

  return [(name, tm, nm, shape, kind) for (name, tm, shape, kind), nm in zip(torch_layers, nnx.eval_shape(build))]


def _randomize(torch, module, seed):
  """Every parameter and float buffer drawn at random (BatchNorm's running variance positive)."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
      if t.is_floating_point():
        t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype))
        if name.endswith("running_var"):
          t.abs_().add_(0.5)


def _to_flax_input(a, kind):
  return np.moveaxis(a, 1, -1) if kind == "channels" else a


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_is_bit_exact_for_every_layer(torch, dtype):
  """torch -> nnx -> torch gives every parameter and buffer back bit for bit (and tree_from/to_torch)."""
  tdt = getattr(torch, dtype)
  for i, (name, tm, nm, _, _) in enumerate(_pairs(torch, dtype)):
    tm = tm.to(tdt)
    _randomize(torch, tm, i)
    wm = llt.copy_weights(tm, nm)
    tensors = dict(tm.named_parameters())
    assert wm.torch_names == tuple(tensors), name
    back = wm.tree_to_torch(nnx.state(nm, nnx.Param))
    assert list(back) == list(tensors)
    for k, t in tensors.items():
      assert back[k].dtype == np.dtype(dtype) and np.array_equal(back[k], t.detach().numpy()), (name, k)
    for k in wm.buffer_names:
      value = nnx.state(nm)  # the whole state: buffers are BatchStat variables
      path = wm.nnx_path(k)
      leaf = value
      for p in path:
        leaf = leaf[p]
      got = wm.to_torch(k, leaf.get_value())
      assert np.array_equal(got, tm.get_buffer(k).numpy()), (name, k)
    tree = wm.tree_from_torch(tensors)
    ref = nnx.state(nm, nnx.Param)
    assert jax.tree.structure(tree) == jax.tree.structure(ref)
    for u, v in zip(jax.tree.leaves(tree), jax.tree.leaves(ref)):
      assert np.array_equal(np.asarray(u), np.asarray(v)), name


def test_forward_agrees_with_torch_after_copy(torch):
  """Each standard layer computes torch's output from the copied weights (float64, 1e-12 relative).

  float32 layouts are covered by the bit-exact round trip; the forward check is float64 only (each
  layer's first call compiles, and float32 would only measure float32 rounding).
  """
  dtype = "float64"
  tdt = getattr(torch, dtype)
  tol = 1e-12
  rng = np.random.default_rng(0)
  for i, (name, tm, nm, shape, kind) in enumerate(_pairs(torch, dtype)):
    tm = tm.to(tdt).eval()
    _randomize(torch, tm, 10 + i)
    llt.copy_weights(tm, nm)
    if kind == "indices":
      x = rng.integers(0, 7, shape)
      want = tm(torch.from_numpy(x)).detach().numpy()
      got = np.asarray(nm(jnp.asarray(x)))
    else:
      x = rng.standard_normal(shape).astype(dtype)
      want = tm(torch.from_numpy(x)).detach().numpy()
      got = np.moveaxis(np.asarray(nm(jnp.asarray(_to_flax_input(x, kind)))), -1, 1) if kind == "channels" \
          else np.asarray(nm(jnp.asarray(x)))
    assert got.shape == want.shape, name
    err = np.max(np.abs(got - want)) / np.max(np.abs(want))
    assert err <= tol, f"{name}: relative error {err:.2e}"


def test_paths_containers_and_buffers(torch):
  """layer1.0.conv <-> ('layer1', 0, 'conv'); BatchNorm statistics go to mean/var; the counter is ignored."""
  nn = torch.nn

  class Block(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv = nn.Conv2d(2, 2, 3, bias=False)
      self.bn = nn.BatchNorm2d(2)

  class T(nn.Module):
    def __init__(self):
      super().__init__()
      self.layer1 = nn.ModuleList([Block(), Block()])
      self.heads = nn.ModuleDict({"cls": nn.Linear(2, 3)})

  class NBlock(nnx.Module):
    def __init__(self, rngs):
      self.conv = nnx.Conv(2, 2, (3, 3), use_bias=False, rngs=rngs)
      self.bn = nnx.BatchNorm(2, rngs=rngs)

  class N(nnx.Module):
    def __init__(self, rngs):
      self.layer1 = nnx.List([NBlock(rngs), NBlock(rngs)])
      self.heads = nnx.Dict({"cls": nnx.Linear(2, 3, rngs=rngs)})

  t, n = T().double(), nnx.eval_shape(lambda: N(nnx.Rngs(0)))   # abstract: copy_weights fills it
  _randomize(torch, t, 3)
  wm = llt.copy_weights(t, n)
  assert wm.nnx_path("layer1.1.conv.weight") == ("layer1", 1, "conv", "kernel")
  assert wm.torch_name(("layer1", 0, "bn", "var")) == "layer1.0.bn.running_var"
  assert wm.torch_name("heads.cls.kernel") == "heads.cls.weight"
  assert wm.buffer_names == ("layer1.0.bn.running_mean", "layer1.0.bn.running_var", "layer1.1.bn.running_mean",
                             "layer1.1.bn.running_var")
  assert [k for k, _ in wm.ignored] == ["layer1.0.bn.num_batches_tracked", "layer1.1.bn.num_batches_tracked"]
  assert np.array_equal(np.asarray(n.layer1[1].bn.mean.get_value()), t.layer1[1].bn.running_mean.numpy())
  assert np.array_equal(np.asarray(n.layer1[0].conv.kernel.get_value()),
                        t.layer1[0].conv.weight.detach().numpy().transpose(2, 3, 1, 0))


def test_refuses_everything_it_cannot_place_in_one_error(torch):
  """An unmatched torch module, a shape mismatch, an unknown layer and an unfilled nnx param: all listed."""
  nn = torch.nn

  class Odd(nn.Module):
    def __init__(self):
      super().__init__()
      self.w = nn.Parameter(torch.zeros(2, 3))

  class T(nn.Module):
    def __init__(self):
      super().__init__()
      self.fc = nn.Linear(4, 3)
      self.extra = nn.Linear(3, 3)
      self.odd = Odd()

  class N(nnx.Module):
    def __init__(self, rngs):
      self.fc = nnx.Linear(4, 5, rngs=rngs)      # wrong width
      self.odd = nnx.Linear(3, 2, rngs=rngs)
      self.head = nnx.Linear(3, 1, rngs=rngs)    # nothing in torch fills it

  n = nnx.eval_shape(lambda: N(nnx.Rngs(0)))
  with pytest.raises(ValueError) as info:
    llt.copy_weights(T(), n)
  msg = str(info.value)
  assert "torch 'fc.weight' (3, 4) -> flax layout (4, 3), but nnx 'fc.kernel' has shape (4, 5)" in msg
  assert "torch 'fc.bias' (3,) -> flax layout (3,), but nnx 'fc.bias' has shape (5,)" in msg
  assert "torch module 'extra' (Linear: extra.weight (3, 3), extra.bias (3,)) has no nnx module at 'extra'" in msg
  assert "torch module 'odd' (Odd: odd.w (2, 3)) has no layout rule" in msg
  assert "nnx Param 'head.kernel' (3, 1) receives no torch tensor" in msg
  assert msg.startswith("copy_weights: cannot place 8 item(s)")  # + odd.kernel, odd.bias unfilled
  assert isinstance(n.odd.kernel.get_value(), jax.ShapeDtypeStruct)   # nothing was written


def test_rename_rules_and_not_strict(torch):
  nn = torch.nn

  class Odd(nn.Module):
    def __init__(self):
      super().__init__()
      self.w = nn.Parameter(torch.arange(6.0, dtype=torch.float64).reshape(2, 3))
      self.register_buffer("scratch", torch.zeros(2), persistent=False)

  class T(nn.Module):
    def __init__(self):
      super().__init__()
      self.features = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
      self.odd = Odd()
      self.aux = nn.Linear(2, 2)

  class N(nnx.Module):
    def __init__(self, rngs):
      self.backbone = nnx.List([nnx.Linear(3, 3, rngs=rngs), nnx.Linear(3, 2, rngs=rngs)])
      self.odd = nnx.Linear(2, 3, use_bias=False, rngs=rngs)

  t, n = T().double(), nnx.eval_shape(lambda: N(nnx.Rngs(0)))
  wm = llt.copy_weights(t, n, rename={"features": "backbone", "aux": None},
                        rules={Odd: {"w": llt.Placement("kernel")}})
  assert wm.nnx_path("features.1.weight") == ("backbone", 1, "kernel")
  assert np.array_equal(np.asarray(n.odd.kernel.get_value()), t.odd.w.detach().numpy())
  ignored = dict(wm.ignored)
  assert set(ignored) == {"aux.weight", "aux.bias", "odd.scratch"}
  # a name-pattern rule wins over the type's default; a rename key matching nothing is reported
  n2 = nnx.eval_shape(lambda: N(nnx.Rngs(0)))
  wm2 = llt.copy_weights(t, n2, rename={"features": "backbone", "aux": None},
                         rules={"odd": lambda tm, nm: {"w": "kernel"}})
  assert wm2.torch_names == wm.torch_names
  with pytest.raises(ValueError, match="rename key 'featurez' matches no torch module"):
    llt.copy_weights(t, nnx.eval_shape(lambda: N(nnx.Rngs(0))), rules={Odd: {"w": "kernel"}},
                     rename={"featurez": "backbone", "features": "backbone", "aux": None})
  # strict=False: names that do not match are recorded, the rest copied; shapes still refused
  n3 = nnx.eval_shape(lambda: N(nnx.Rngs(0)))
  wm3 = llt.copy_weights(t, n3, rename={"features": "backbone"}, rules={Odd: {"w": "kernel"}}, strict=False)
  assert any("'aux'" in p for p in wm3.unplaced)
  assert np.array_equal(np.asarray(n3.backbone[0].kernel.get_value()), t.features[0].weight.detach().numpy().T)
  with pytest.raises(ValueError, match="has shape"):
    llt.copy_weights(t, nnx.eval_shape(lambda: N(nnx.Rngs(0))), rename={"features": "backbone"},
                     rules={Odd: {"w": llt.Placement("kernel", perm=(1, 0))}}, strict=False)


def test_weight_map_converts_any_tensors_and_refuses_wrong_ones(torch):
  t = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Flatten(), torch.nn.Linear(3, 2)).double()
  n = nnx.eval_shape(lambda: nnx.Sequential(nnx.Conv(2, 3, (3, 3), padding="VALID", rngs=nnx.Rngs(0)),
                                             lambda x: x.reshape(x.shape[0], -1), nnx.Linear(3, 2, rngs=nnx.Rngs(0))))
  wm = llt.copy_weights(t, n)
  assert wm.nnx_path("2.weight") == ("layers", 2, "kernel")
  moments = {k: np.random.default_rng(0).standard_normal(v.shape) for k, v in t.named_parameters()}
  tree = wm.tree_from_torch(moments)
  assert np.array_equal(np.asarray(tree["layers"][0]["kernel"].get_value()), moments["0.weight"].transpose(2, 3, 1, 0))
  back = wm.tree_to_torch(tree)
  assert all(np.array_equal(back[k], moments[k]) for k in moments)
  pure = wm.tree_to_torch(nnx.to_pure_dict(nnx.state(n, nnx.Param)))
  assert np.array_equal(pure["2.weight"], t[2].weight.detach().numpy())
  with pytest.raises(ValueError, match=r"missing tensor for torch parameter '2.bias'.*'bogus' is not a placed"):
    wm.tree_from_torch({**{k: v for k, v in moments.items() if k != "2.bias"}, "bogus": np.zeros(1)})
  with pytest.raises(ValueError, match=r"'0.weight': expected shape \(3, 2, 3, 3\), got \(3, 2, 3\)"):
    wm.tree_from_torch({**moments, "0.weight": np.zeros((3, 2, 3))})
