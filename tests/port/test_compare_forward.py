"""compare_forward: passes on correct ports, localises planted bugs to the right submodule, names traps."""

import numpy as np
import pytest

from tests.port import twins


@pytest.fixture
def torch():
  return pytest.importorskip("torch")


def _pair(kind, dtype, **kw):
  import parity

  t = twins.torch_model(kind, dtype)
  n = twins.nnx_model(kind, dtype, **kw)
  parity.copy_weights(t, n)
  return t, n


@pytest.mark.parametrize(("kind", "dtype"), [("block", "float32"), ("block", "float64"), ("cnn", "float64"),
                                             ("mlp", "float32")])
def test_correct_ports_pass(torch, kind, dtype):
  import parity

  t, n = _pair(kind, dtype)
  x, _ = twins.inputs(kind, 4, np.random.default_rng(0), dtype)
  r = parity.compare_forward(t, n, x)
  assert r.passed, str(r)
  assert r.first_divergence is None
  assert r.dtype == dtype and r.tolerance == {"float32": 1e-5, "float64": 1e-10}[dtype]
  paired = [row for row in r.rows if row.nnx_path is not None]
  assert {row.torch_path for row in paired} >= {"", *(name for name, m in t.named_modules() if name)}
  # the CNN's NCHW activations were compared against nnx's NHWC ones
  if kind == "cnn":
    row = next(row for row in r.rows if row.torch_path == "conv1")
    assert row.torch_shape == (4, twins.C1, 6, 6) and row.nnx_shape == (4, 6, 6, twins.C1)


def test_wrong_layernorm_eps_is_localised_and_named(torch):
  import parity

  t, n = _pair("block", "float64", ln_eps=1e-6)
  x, _ = twins.inputs("block", 3, np.random.default_rng(1))
  r = parity.compare_forward(t, n, x)
  assert not r.passed
  d = r.first_divergence
  assert (d.submodule, d.quantity, d.trap) == ("ln1", "output", "layernorm_eps")
  trap = next(tr for tr in r.traps if tr.where == "ln1")
  assert trap.confirmed and "epsilon=1e-05" in trap.message
  # the embedding before it agreed
  assert next(row for row in r.rows if row.torch_path == "emb").status == "ok"


def test_tanh_gelu_is_found_by_rerun(torch):
  import parity

  t, n = _pair("block", "float64", gelu_exact=False)
  x, _ = twins.inputs("block", 3, np.random.default_rng(2))
  r = parity.compare_forward(t, n, x)
  d = r.first_divergence
  # F.gelu is called in the block's own forward, between ln2/ff1 and ff2: the block is the first
  # module whose inputs agree and output differs, and ff2 is the first whose inputs differ
  assert d.submodule == "" and d.trap == "gelu_tanh" and "ff2" in d.note
  assert any(tr.name == "gelu_tanh" and tr.confirmed for tr in r.traps)
  assert next(row for row in r.rows if row.torch_path == "ff1").status == "ok"


def test_transposed_kernel_is_localised(torch):
  import parity

  t = twins.torch_model("mlp", "float64")
  n = twins.nnx_model("mlp", "float64")
  twins.hand_copy_mlp(t, n, transpose_fc2=False)  # the plant: fc2's (square) kernel not transposed
  x, _ = twins.inputs("mlp", 4, np.random.default_rng(3))
  r = parity.compare_forward(t, n, x)
  assert (r.first_divergence.submodule, r.first_divergence.trap) == ("fc2", None)
  status = {row.torch_path: row.status for row in r.rows}
  assert status["fc1"] == "ok" and status["fc2"] == "DIVERGES" and status["fc3"] == "downstream"
  twins.hand_copy_mlp(t, n)  # the fix
  assert parity.compare_forward(t, n, x).passed


def test_dropped_bias_is_localised_and_named(torch):
  import parity

  t = twins.torch_model("mlp", "float64")
  n = twins.nnx_model("mlp", "float64", mid_bias=False)
  twins.hand_copy_mlp(t, n)
  x, _ = twins.inputs("mlp", 4, np.random.default_rng(4))
  r = parity.compare_forward(t, n, x)
  assert (r.first_divergence.submodule, r.first_divergence.trap) == ("fc2", "dropped_bias")


def test_asymmetric_same_padding_is_named(torch):
  import parity

  t = twins.torch_model("cnn", "float64").eval()
  n = twins.nnx_model("cnn", "float64", padding2="SAME", train=False)
  parity.copy_weights(t, n)
  x, _ = twins.inputs("cnn", 2, np.random.default_rng(5))
  r = parity.compare_forward(t, n, x)
  assert (r.first_divergence.submodule, r.first_divergence.trap) == ("conv2", "same_padding")
  assert "padding=((1, 1), (1, 1))" in next(tr for tr in r.traps if tr.name == "same_padding").message


def test_batchnorm_conventions_are_named(torch):
  import parity

  t = twins.torch_model("cnn", "float64", momentum=0.1)
  n = twins.nnx_model("cnn", "float64", momentum=0.1)  # torch's number, flax's convention: wrong
  parity.copy_weights(t, n)
  x, _ = twins.inputs("cnn", 2, np.random.default_rng(6))
  before_t = t.bn1.running_var.detach().clone()
  before_n = np.asarray(n.bn1.var[...]).copy()
  r = parity.compare_forward(t, n, x)
  assert r.passed  # training mode: both normalise with the batch statistics
  # both models are left as they were (the training-mode pass updated the statistics, then restored)
  assert torch.equal(t.bn1.running_var, before_t) and np.array_equal(np.asarray(n.bn1.var[...]), before_n)
  names = {(tr.name, tr.where) for tr in r.traps}
  assert ("batchnorm_momentum", "bn1") in names and ("batchnorm_running_var", "bn1") in names
  t.eval()
  r = parity.compare_forward(t, n, x)
  assert any(tr.name == "batchnorm_mode" for tr in r.traps)
  assert not r.passed and r.first_divergence.submodule == "bn1" and r.first_divergence.trap == "batchnorm_mode"


def test_report_outputs(torch):
  import json

  import parity

  t, n = _pair("block", "float64", ln_eps=1e-6)
  x, _ = twins.inputs("block", 2, np.random.default_rng(7))
  r = parity.compare_forward(t, n, x)
  text = str(r)
  assert "FIRST DIVERGENCE" in text and "ln1" in text and "layernorm_eps" in text
  data = json.loads(r.to_json())
  assert data["passed"] is False and data["first_divergence"]["submodule"] == "ln1"
  assert len(data["rows"]) == len(r.rows)
  md = r.to_markdown()
  assert md.startswith("## compare_forward: FAILED") and "| `ln1` |" in md


def test_nnx_classes_are_restored_even_on_error(torch):
  from flax import nnx

  import parity

  t = twins.torch_model("mlp", "float64")
  n = twins.nnx_model("mlp", "float64")
  before = nnx.Linear.__call__
  with pytest.raises(Exception):
    parity.compare_forward(t, n, np.ones((2, twins.IN + 1)))  # wrong width: both sides raise
  assert nnx.Linear.__call__ is before
  twins.hand_copy_mlp(t, n)
  assert parity.compare_forward(t, n, np.ones((2, twins.IN))).passed
  assert nnx.Linear.__call__ is before


def test_shape_mismatch_without_layout_rule_is_reported(torch):
  import parity

  t = twins.torch_model("mlp", "float64")
  n = twins.nnx_model("mlp", "float64")
  twins.hand_copy_mlp(t, n)
  flip = lambda path, a, shape: a[:, ::-1] if path == "fc3" else None  # noqa: E731 - a wrong user hook
  r = parity.compare_forward(t, n, np.ones((2, twins.IN)), output_layout=flip)
  assert r.first_divergence.submodule == "fc3"


def test_copy_weights_is_interops():
  import losslab_jax as ll
  import parity

  assert parity.copy_weights is ll.interop.torch.copy_weights
  assert {"copy_weights", "compare_forward", "compare_training"} <= set(parity.__all__)


def test_weights_that_differ_from_the_map_are_named(torch):
  import parity

  t = twins.torch_model("mlp", "float64")
  n = twins.nnx_model("mlp", "float64")
  wm = parity.copy_weights(t, n)
  x = np.ones((2, twins.IN))
  assert parity.compare_forward(t, n, x, weight_map=wm).passed
  n.fc2.bias[...] = n.fc2.bias[...] * 2.0
  r = parity.compare_forward(t, n, x, weight_map=wm)
  d = r.first_divergence
  assert (d.submodule, d.trap) == ("fc2", "weights_differ") and "fc2.bias" in d.note
