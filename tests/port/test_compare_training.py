"""compare_training: passes on correct ports; localises planted optimizer, schedule, clipping and model bugs
to the right step, parameter and quantity; names the trap; teacher forcing separates model from optimizer."""

import numpy as np
import pytest

from tests.port import twins


@pytest.fixture
def torch():
  torch = pytest.importorskip("torch")
  threads = torch.get_num_threads()
  torch.set_num_threads(1)  # tiny models: more threads only add contention
  yield torch
  torch.set_num_threads(threads)


def _batches(kind, steps, dtype="float64", seed=0, n=4, scale=None):
  rng = np.random.default_rng(seed)
  out = [twins.inputs(kind, n, rng, dtype) for _ in range(steps)]
  if scale:  # scale some batches' inputs (to make a gradient norm jump at a chosen step)
    out = [((x * scale[k]) if k in scale else x, y) for k, (x, y) in enumerate(out)]
  return out


def _losses(kind):
  import torch.nn.functional as F

  import losslab_jax as ll

  to_nhwc = (lambda x: x.transpose(0, 2, 3, 1)) if kind == "cnn" else (lambda x: x)
  return (lambda m, b: F.cross_entropy(m(b[0]), b[1]),
          lambda m, b: ll.losses.cross_entropy(m(to_nhwc(b[0])), b[1]))


def _run(kind, make_opt, *, dtype="float64", steps=4, nnx_kw=None, batches=None, **kw):
  import parity

  t = twins.torch_model(kind, dtype)
  n = twins.nnx_model(kind, dtype, **(nnx_kw or {}))
  opt, sched = make_opt(t)
  tl, jl = _losses(kind)
  return parity.compare_training(t, opt, tl, n, jl, batches or _batches(kind, steps, dtype), scheduler=sched, **kw)


def _adam(lr=1e-2):
  import torch

  return lambda t: (torch.optim.Adam(t.parameters(), lr=lr), None)


def _sgd_step_lr(t):
  import torch

  opt = torch.optim.SGD(t.parameters(), lr=0.1, momentum=0.9)
  return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_correct_block_port_passes(torch, dtype):
  r = _run("block", lambda t: (torch.optim.AdamW(t.parameters(), lr=1e-2, weight_decay=0.1), None), dtype=dtype,
           steps=3)
  assert r.passed, str(r)
  assert r.first_divergence is None and len(r.steps) == 3
  assert set(r.steps[0].errors["grad"]) == {n for n, _ in twins.torch_model("block", dtype).named_parameters()}
  assert r.verdict == "Model and optimizer agree at every step."
  if dtype == "float32":
    assert r.tolerance == {"loss": 1e-5, "grad": 3e-4, "update": 1e-3, "param": 3e-4, "buffer": 3e-4}
    # the loss, and the parameters up to rounding the gradients allow, well inside them
    assert max(s.loss_rel for s in r.steps) <= 1e-6 and max(s.worst("param")[1] for s in r.steps) <= 1e-5


def test_adam_eps_inside_sqrt_is_an_update_divergence_at_step_0(torch):
  import optax

  tx = optax.chain(optax.scale_by_adam(b1=0.9, b2=0.999, eps=0.0, eps_root=1e-8), optax.scale(-1e-2))  # the plant
  r = _run("mlp", _adam(), tx=tx)
  d = r.first_divergence
  assert (d.step, d.quantity, d.parameter) == (0, "update", "fc1.weight")
  assert r.steps[0].loss_rel == 0 and max(r.steps[0].errors["grad"].values()) <= 1e-12  # model agrees
  assert "optimizer" in r.verdict
  import losslab_jax as ll

  assert _run("mlp", _adam(), tx=ll.optim.adam(lr=1e-2)).passed  # the fix


def test_schedule_one_step_late_is_found_at_the_first_lr_change(torch):
  import jax.numpy as jnp

  import losslab_jax as ll

  late = lambda count: 0.1 * 0.5 ** (jnp.maximum(count - 1, 0) // 3)  # noqa: E731 - the plant: StepLR(3, 0.5) late
  r = _run("mlp", _sgd_step_lr, tx=ll.optim.sgd(lr=late, momentum=0.9), steps=5)
  d = r.first_divergence
  assert (d.step, d.quantity, d.trap) == (3, "update", "schedule_shift")
  assert "one step late" in r.traps[0].message
  right = lambda count: 0.1 * 0.5 ** (count // 3)  # noqa: E731
  assert _run("mlp", _sgd_step_lr, tx=ll.optim.sgd(lr=right, momentum=0.9), steps=5).passed


def test_default_tx_from_interop_follows_the_scheduler(torch):
  assert _run("mlp", _sgd_step_lr, steps=5).passed


def _first_clipped_step(batches, max_norm):
  """An independent torch loop (no clipping needed: nothing is clipped before the first clipped step)."""
  import torch

  import torch.nn.functional as F

  t = twins.torch_model("mlp", "float64")
  opt = torch.optim.SGD(t.parameters(), lr=0.1)
  for k, (x, y) in enumerate(batches):
    opt.zero_grad()
    F.cross_entropy(t(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in t.parameters()]))
    if norm > max_norm:
      return k
    opt.step()
  return None


def test_clipping_without_torch_eps_is_found_at_the_first_clipped_step(torch):
  import optax

  import losslab_jax as ll

  batches = _batches("mlp", 5, scale={2: 30.0, 3: 30.0, 4: 30.0})
  max_norm = 1.0
  first = _first_clipped_step(batches, max_norm)
  assert first == 2  # the data are built so that clipping starts at step 2
  make = lambda t: (torch.optim.SGD(t.parameters(), lr=0.1), None)  # noqa: E731
  plant = optax.chain(optax.clip_by_global_norm(max_norm), ll.optim.sgd(lr=0.1))
  r = _run("mlp", make, tx=plant, clip_grad_norm=max_norm, batches=batches)
  d = r.first_divergence
  assert (d.step, d.quantity, d.trap) == (first, "update", "clip_eps")
  assert _run("mlp", make, clip_grad_norm=max_norm, batches=batches).passed  # default tx: ll.optim.clip_grad_norm


def test_model_bug_is_a_loss_divergence_and_teacher_forcing_clears_the_optimizer(torch):
  make = lambda t: (torch.optim.AdamW(t.parameters(), lr=1e-2), None)  # noqa: E731
  r = _run("block", make, nnx_kw={"ln_eps": 1e-6}, steps=2)
  assert (r.first_divergence.step, r.first_divergence.quantity) == (0, "loss")
  assert "model differs" in r.verdict and "teacher_forcing=True" in r.verdict
  r = _run("block", make, nnx_kw={"ln_eps": 1e-6}, steps=2, teacher_forcing=True)
  assert (r.first_divergence.step, r.first_divergence.quantity) == (0, "loss")
  assert "the JAX optimizer agrees at every step" in r.verdict
  for s in r.steps:
    assert max(s.errors["update"].values()) <= 1e-10 and max(s.errors["param"].values()) <= 1e-10


def test_teacher_forcing_still_catches_the_optimizer(torch):
  import optax

  tx = optax.chain(optax.scale_by_adam(eps=0.0, eps_root=1e-8), optax.scale(-1e-2))
  r = _run("mlp", _adam(), tx=tx, teacher_forcing=True)
  assert (r.first_divergence.step, r.first_divergence.quantity) == (0, "update")


def test_epoch_stepped_scheduler_converted_per_step_is_caught(torch):
  import losslab_jax as ll

  def make(t):
    opt = torch.optim.SGD(t.parameters(), lr=0.1)
    return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

  per_step = lambda c: 0.1 * 0.5 ** c  # noqa: E731 - the silent failure: one scheduler step per optimizer step
  r = _run("mlp", make, tx=ll.optim.sgd(lr=per_step), steps=4, scheduler_interval="epoch", steps_per_epoch=2)
  assert (r.first_divergence.step, r.first_divergence.quantity, r.first_divergence.trap) == (
      1, "update", "schedule_shift")
  assert _run("mlp", make, steps=4, scheduler_interval="epoch", steps_per_epoch=2).passed  # interop, per epoch


def test_initial_weights_that_differ_are_reported(torch):
  import parity

  t = twins.torch_model("mlp", "float64")
  n = twins.nnx_model("mlp", "float64")
  wm = parity.copy_weights(t, n)
  n.fc2.bias[...] = n.fc2.bias[...] + 1.0
  tl, jl = _losses("mlp")
  r = parity.compare_training(t, torch.optim.SGD(t.parameters(), lr=0.1), tl, n, jl, _batches("mlp", 2),
                              weight_map=wm)
  assert (r.first_divergence.step, r.first_divergence.quantity, r.first_divergence.parameter) == (
      0, "param", "fc2.bias")
  assert "initial weights" in r.first_divergence.note


def test_report_outputs_and_validation(torch, tmp_path):
  import json

  r = _run("mlp", _adam(), steps=2)
  assert "compare_training" in str(r) and "PASSED" in str(r)
  data = json.loads(r.to_json())
  assert data["passed"] is True and len(data["steps"]) == 2 and "fc1.weight" in data["steps"][0]["errors"]["grad"]
  assert r.to_markdown().startswith("## compare_training: passed")
  curves = r.curves()
  assert set(curves) == {"loss", "grads", "params"} and len(curves["loss"]) == 2
  pytest.importorskip("matplotlib")
  r.plot_drift(tmp_path / "drift.png")
  assert (tmp_path / "drift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(ValueError, match="steps_per_epoch"):
    _run("mlp", _adam(), scheduler_interval="epoch")
  with pytest.raises(ValueError, match="scheduler_interval"):
    _run("mlp", _adam(), scheduler_interval="batch")
  with pytest.raises(ValueError, match="rtol keys"):
    _run("mlp", _adam(), rtol={"gradient": 1e-3})


def test_a_zero_in_exact_arithmetic_gradient_is_named_and_can_be_ignored(torch):
  """Attention's key bias: softmax ignores a per-query constant, so its gradient is rounding noise on both
  sides, which AdamW scales up differently: named (noise_gradient), and ignore= leaves it out."""
  import parity

  def run(**kw):
    t = twins.torch_model("block", "float64", key_bias=True)
    n = twins.nnx_model("block", "float64", key_bias=True)
    tl, jl = _losses("block")
    return parity.compare_training(t, torch.optim.AdamW(t.parameters(), lr=1e-2), tl, n, jl,
                                   _batches("block", 2), **kw)

  r = run()
  d = r.first_divergence
  assert (d.parameter, d.quantity, d.trap) == ("k.bias", "update", "noise_gradient")
  assert r.steps[0].errors["grad"]["k.bias"] <= 1e-10  # the gradients themselves agree (to the model's scale)
  r = run(ignore=["k.bias"])
  assert r.passed and r.ignore == ("k.bias",) and "ignored (not judged): k.bias" in str(r)
