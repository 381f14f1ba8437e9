"""Whole-model training parity: the twin models, the data, the config coverage, the drift report, and the
shared engine with parity.compare_training.

The training trajectories themselves are compared by ``tests/test_parity.py`` (cases ``training``,
``training_loss``, ``training_first_step``). These tests check what those comparisons rest on.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from parity import _drift, _models
from parity._compare import seed_for
from parity.cases import training
from tests._optional import optional_import

torch = optional_import("torch")   # imported on first use: a missing torch skips only the tests using it


@pytest.fixture
def needs_torch():
  """For tests that reach torch only through parity's modules (they import torch on first use)."""
  pytest.importorskip("torch")


@pytest.mark.usefixtures("needs_torch")
@pytest.mark.parametrize("kind", _models.MODELS)
def test_copied_weights_give_torch_outputs_and_grads(kind):
  """At init, on the same float64 input, nnx equals torch: outputs and every parameter gradient."""
  torch_model, nnx_model, wm = _models.build_pair(kind, 7, "float64")
  rng = np.random.default_rng(0)
  x = rng.standard_normal(_models.input_shape(kind, 5, "torch"))
  cot = rng.standard_normal((5, _models.NUM_OUT))
  out_t = torch_model(torch.from_numpy(x))
  (out_t * torch.from_numpy(cot)).sum().backward()
  grads_t = {n: p.grad.numpy() for n, p in torch_model.named_parameters()}

  from flax import nnx

  graphdef, state = nnx.split(nnx_model)
  xj = jnp.asarray(_models.to_nnx_input(kind, x))

  def f(s):
    out = nnx.merge(graphdef, s)(xj)
    return jnp.sum(out * jnp.asarray(cot)), out

  (_, out_j), grads_j = jax.value_and_grad(f, has_aux=True)(state)
  np.testing.assert_allclose(np.asarray(out_j), out_t.detach().numpy(), rtol=1e-12, atol=1e-12)
  grads_j = wm.tree_to_torch(grads_j)
  assert list(grads_j) == list(grads_t)
  for name, g in grads_t.items():
    assert grads_j[name].shape == g.shape, name
    np.testing.assert_allclose(np.asarray(grads_j[name]), g, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.usefixtures("needs_torch")
@pytest.mark.parametrize("kind", _models.MODELS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_copy_is_exact_and_layouts_invert(kind, dtype):
  from flax import nnx

  torch_model, nnx_model, wm = _models.build_pair(kind, 3, dtype)
  named = _models.torch_named_params(torch_model)
  back = wm.tree_to_torch(nnx.state(nnx_model, nnx.Param))
  assert list(back) == list(named)  # torch's order of named_parameters
  for name, value in named.items():
    assert np.asarray(back[name]).dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(back[name]), value, err_msg=name)
  again = wm.tree_to_torch(wm.tree_from_torch(named))
  for name, value in named.items():
    np.testing.assert_array_equal(again[name], value)


@pytest.mark.usefixtures("needs_torch")
def test_training_case_and_compare_training_share_the_engine():
  """compare_training, given the training case's transformation, passes on the same models and data."""
  import parity

  cfg = training.CONFIGS[0]
  kw = dict(cfg.kwargs)
  model, loss, clip = kw.pop("model"), kw.pop("loss"), kw.pop("clip")
  torch_model, nnx_model, wm = _models.build_pair(model, 5, "float64")
  opt, sched = training.torch_optimizer(torch_model.parameters(), **kw)
  tx = training.jax_transform(clip=clip, **kw)
  xs, ys = training.make_data(5, "float64", model, loss, 6)
  t_loss, j_loss = training._torch_loss(loss), training._jax_loss(loss)
  report = parity.compare_training(torch_model, opt, lambda m, b: t_loss(m(b[0]), b[1]), nnx_model,
                                   lambda m, b: j_loss(m(b[0]), b[1]), list(zip(xs, ys)), tx=tx, scheduler=sched,
                                   clip_grad_norm=clip, weight_map=wm)
  assert report.passed, str(report)


@pytest.mark.usefixtures("needs_torch")
def test_cnn_dense_layer_is_permuted_not_just_transposed():
  """torch flattens (C, H, W), nnx (H, W, C): a plain transpose of fc.weight would be wrong."""
  torch_model, nnx_model, _ = _models.build_pair("cnn", 5, "float64")
  w = torch_model.fc.weight.detach().numpy()
  kernel = np.asarray(_models.nnx_params(nnx_model)["fc"]["kernel"])
  assert not np.array_equal(kernel, w.T)
  c, h = _models.CHANNELS[1], _models.IMAGE - 4
  # feature (row) of the nnx kernel for torch's input index (channel 2, row 1, column 3)
  assert kernel[(1 * h + 3) * c + 2, 4] == w[4, (2 * h + 1) * h + 3]


@pytest.mark.usefixtures("needs_torch")
def test_build_rejects_unknown_model():
  with pytest.raises(ValueError, match="expected kind in"):
    _models.build_torch("resnet", 0, "float32")


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("kind", _models.MODELS)
def test_data_order_and_dtypes(kind, loss):
  xs64, ys64 = training.make_data(11, "float64", kind, loss, 20)
  xs32, ys32 = training.make_data(11, "float32", kind, loss, 20)
  assert xs64.shape == (20, training.BATCH, *_models.input_shape(kind, 1, "torch")[1:])
  np.testing.assert_array_equal(xs32.astype(np.float64), xs64)  # float32-exact data in both dtypes
  if loss == "cross_entropy":
    assert ys64.dtype == np.int64 and ys64.min() >= 0 and ys64.max() < _models.NUM_OUT
    np.testing.assert_array_equal(ys32, ys64)
  else:
    np.testing.assert_array_equal(ys32.astype(np.float64), ys64)
  # each epoch (8 batches) visits every example once, in a new order
  per_epoch = training.DATASET // training.BATCH
  flat = xs64.reshape(20, training.BATCH, -1)
  epoch0 = flat[:per_epoch].reshape(training.DATASET, -1)
  epoch1 = flat[per_epoch:2 * per_epoch].reshape(training.DATASET, -1)
  assert len({r.tobytes() for r in epoch0}) == training.DATASET
  assert {r.tobytes() for r in epoch0} == {r.tobytes() for r in epoch1}
  assert not np.array_equal(epoch0, epoch1)


def test_configs_cover_every_loss_optimizer_schedule_on_both_models():
  kw = [c.kwargs for c in training.CONFIGS]
  assert 8 <= len(kw) <= 12
  for key, values in (("loss", training.LOSSES), ("optimizer", training.OPTIMIZERS),
                      ("schedule", training.SCHEDULES)):
    assert {k[key] for k in kw} == set(values), key
  assert {k["model"] for k in kw} == set(_models.MODELS)
  assert sum(k["clip"] is not None for k in kw) >= len(kw) // 2 + 1


def _torch_run_stats(cfg):
  """Steps torch clipped, and its lr at each step, over the 100 steps of the float64 ``training`` run."""
  seed = seed_for("training", cfg.id, "float64")
  kw = dict(cfg.kwargs)
  net = _models.build_torch(kw["model"], seed, "float64")
  clip = kw.pop("clip")
  model, loss = kw.pop("model"), kw.pop("loss")
  opt, sched = training.torch_optimizer(net.parameters(), **kw)
  loss_fn = training._torch_loss(loss)
  xs, ys = training.make_data(seed, "float64", model, loss, training.STEPS)
  clipped, lrs = 0, []
  for k in range(training.STEPS):
    opt.zero_grad()
    value = loss_fn(net(torch.from_numpy(xs[k])), torch.from_numpy(ys[k]))
    value.backward()
    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), clip if clip is not None else float("inf"))
    clipped += bool(clip is not None and float(norm) > clip)
    if kw["schedule"] == "plateau":
      sched.step(value.item())
    lrs.append(opt.param_groups[0]["lr"])
    opt.step()
    if kw["schedule"] != "plateau":
      sched.step()
  return clipped, lrs


@pytest.fixture
def one_torch_thread():
  """Tiny models: a second thread only adds contention (as in ``training.run_torch``)."""
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)


@pytest.mark.parametrize("cfg", training.CONFIGS, ids=lambda c: c.id)
def test_configs_exercise_clipping_and_schedules(cfg, one_torch_thread):
  """Clipping bites on some steps (not all), and the lr really moves (plateau: reductions happen)."""
  clipped, lrs = _torch_run_stats(cfg)
  if cfg.kwargs["clip"] is not None:
    assert 0 < clipped < training.STEPS
  reductions = sum(b < a * (1 - 1e-9) for a, b in zip(lrs, lrs[1:]))
  assert reductions >= 1
  if cfg.kwargs["schedule"] == "plateau":
    assert min(lrs) <= cfg.kwargs["lr"] * cfg.kwargs["schedule_kw"]["factor"] * (1 + 1e-9)


@pytest.mark.usefixtures("needs_torch")
def test_drift_report_writes_json_and_png(tmp_path):
  assert _drift.main(tmp_path, ["mlp-huber-lion"], steps=3) == 0
  result = json.loads((tmp_path / "parity-drift.json").read_text())
  (cid, curves), = result["configs"].items()
  assert cid == "mlp-huber-lion-one_cycle"
  for key in ("jax_vs_torch", "torch_vs_f64", "jax_vs_f64"):
    for part in _drift.PARTS:
      values = curves[key][part]
      assert len(values) == 4 and all(np.isfinite(values))
  assert curves["jax_vs_torch"]["params"][0] == 0.0  # record 0: the copied weights
  assert curves["torch_vs_f64"]["loss"][0] > 0.0  # float32 really differs from float64
  assert (tmp_path / "parity-drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_drift_report_rejects_unknown_config(tmp_path):
  assert _drift.main(tmp_path, ["no-such-config"], steps=1) == 2
