"""ll.monitor: time attribution with a fake clock (no timing assertions), the no-sync property (an
injected counting block), export round trips, output modes, memory readers, the lr accessor, and
use in nnx and plain optax loops."""

from __future__ import annotations

import io
import itertools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from losslab_jax.monitor._display import progress_line

M = ll.monitor


class FakeClock:
  """Returns the next of the given readings (seconds)."""

  def __init__(self, readings):
    self.readings = iter(readings)

  def __call__(self):
    return next(self.readings)


class Scalar:
  """A stand-in for a device scalar: records when its value is read, and by whom."""

  shape = ()

  def __init__(self, value, log):
    self.value, self.log = value, log

  def __array__(self, dtype=None, copy=None):
    self.log.append(("read", self.value))
    return np.asarray(self.value, dtype=dtype)


def quiet(**kw):
  return M.Monitor(output="none", memory=False, **kw)


# --- time attribution (fake clock) ----------------------------------------------------------------


def test_window_time_is_shared_among_its_steps():
  # readings: start, then one per sync: after step 0, after steps 1-3, after 4-6, after 7 (close), end
  clock = FakeClock([10.0, 12.0, 12.3, 12.9, 13.0, 13.0])
  mon = quiet(sync_every=3, items_per_step=32, clock=clock)
  for i in range(8):
    mon.step(loss=float(i))
  s = mon.close()
  np.testing.assert_allclose([r["time_s"] for r in mon.records], [2.0, .1, .1, .1, .2, .2, .2, .1], rtol=1e-12)
  assert [r["window"] for r in mon.records] == [0, 1, 1, 1, 2, 2, 2, 3]
  assert s["first_step_s"] == 2.0
  assert s["step_time_s"] == pytest.approx(0.1)  # median of the later windows' per-step times (.1, .2, .1)
  assert s["step_time_mean_s"] == pytest.approx(1.0 / 7)  # 1.0 s over 7 steps
  assert s["compile_s"] == pytest.approx(1.9)
  assert s["steps_per_s"] == pytest.approx(7.0) and s["items_per_s"] == pytest.approx(7.0 * 32)
  assert s["total_s"] == pytest.approx(3.0) and s["steps"] == 8 and s["syncs"] == 4


def test_status_eta_and_single_step_run():
  mon = quiet(total_steps=10, sync_every=2, clock=FakeClock([0.0, 1.0, 1.5]))
  mon.step(loss=1.0)
  st = mon.status()
  # after the first step only its time (with compilation) is known: no step time, no ETA yet
  assert st["steps"] == 1 and st["first_step_s"] == 1.0 and st["step_time_s"] is None and st["eta_s"] is None
  assert "first step 1.00 s (with compilation)" in progress_line(st)
  mon.step(loss=0.5)
  mon.step(loss=0.25)
  st = mon.status()
  assert st["step_time_s"] == pytest.approx(0.25) and st["eta_s"] == pytest.approx(7 * 0.25)
  assert st["values"] == {"loss": 0.25}
  mon2 = quiet(clock=FakeClock([0.0, 0.7, 0.7, 0.7]))
  mon2.step(loss=3.0)
  s = mon2.close()
  assert s["first_step_s"] == pytest.approx(0.7) and s["compile_s"] is None and s["step_time_s"] is None


# --- no sync per step ------------------------------------------------------------------------------


def test_blocks_once_per_window_and_reads_values_only_after_blocking():
  log = []

  def block(target):
    log.append(("block", target["loss"].value))
    return target

  mon = quiet(sync_every=25, block=block)
  for i in range(100):
    mon.step(loss=Scalar(i, log))
    if 1 <= i < 25:  # between syncs nothing touches the device
      assert log == [("block", 0), ("read", 0)]
  mon.close()
  blocks = [v for kind, v in log if kind == "block"]
  assert blocks == [0, 25, 50, 75, 99] and mon.syncs == 5
  # every value is read after the block on its window's newest step, and exactly once
  reads, last_block = [], -1
  for kind, v in log:
    if kind == "block":
      last_block = v
    else:
      assert v <= last_block
      reads.append(v)
  assert reads == list(range(100))


def test_sync_on_is_what_gets_blocked():
  seen = []
  mon = quiet(sync_every=2, block=lambda t: seen.append(t))
  mon.step("state-0", loss=1.0)
  mon.step("state-1", loss=1.0)
  mon.step("state-2", loss=1.0)
  mon.close()
  assert seen == ["state-0", "state-2"]


def test_only_the_newest_sync_target_is_kept_alive():
  import gc
  import weakref

  class State:
    pass

  mon = quiet(sync_every=50, block=lambda t: t)
  refs = []
  for _ in range(5):
    state = State()
    refs.append(weakref.ref(state))
    mon.step(state, loss=1.0)
  del state
  gc.collect()
  assert [r() is None for r in refs] == [True, True, True, True, False]  # the first 4 are free
  mon.close()


def test_jitted_loop_counts_block_calls():
  calls = []

  def counting_block(x):
    calls.append(1)
    return jax.block_until_ready(x)

  f = jax.jit(lambda x: (x * 0.5, jnp.sum(x)))
  x = jnp.ones(4)
  mon = quiet(sync_every=10, block=counting_block)
  losses = []
  for _ in range(35):
    x, loss = f(x)
    losses.append(loss)
    mon.step(x, loss=loss)
  mon.close()
  assert len(calls) == 1 + 4  # step 0, then windows ending at steps 10, 20, 30 and the rest at close
  np.testing.assert_allclose([r["loss"] for r in mon.records], np.asarray(losses), rtol=0)


# --- logged values --------------------------------------------------------------------------------


def test_value_statistics_and_first_nonfinite_step():
  mon = quiet(sync_every=4)
  for v in (3.0, 1.0, math.nan, 2.0, math.inf, 0.5):
    mon.step(loss=v, other=1.0)
  s = mon.close()
  assert s["values"]["loss"]["min"] == 0.5 and s["values"]["loss"]["max"] == 3.0
  assert s["values"]["loss"]["mean"] == pytest.approx(6.5 / 4) and s["values"]["loss"]["last"] == 0.5
  assert s["first_nonfinite_step"] == 2
  assert s["values"]["other"] == {"last": 1.0, "min": 1.0, "max": 1.0, "mean": 1.0}


def test_bad_values_and_arguments():
  mon = quiet()
  with pytest.raises(ValueError, match="expected `loss` to be a scalar, got shape"):
    mon.step(loss=jnp.ones(3))
  with pytest.raises(TypeError, match="expected `loss` to be a number or a scalar array"):
    mon.step(loss="0.1")
  mon.step(loss=1.0)
  mon.close()
  with pytest.raises(RuntimeError, match="closed"):
    mon.step(loss=1.0)
  with pytest.raises(ValueError, match="`sync_every` to be a positive integer"):
    M.Monitor(sync_every=0)
  with pytest.raises(ValueError, match="`output` to be one of"):
    M.Monitor(output="fancy")


def test_start_resets_and_context_manager_closes():
  stream = io.StringIO()
  with M.Monitor(output="plain", stream=stream, memory=False) as mon:
    for i in range(3):
      mon.step(loss=float(i))
  assert mon.summary()["steps"] == 3 and "train: summary" in stream.getvalue()
  mon.start()
  assert mon.records == [] and mon.syncs == 0


# --- export ---------------------------------------------------------------------------------------


def _run(n=7):
  mon = quiet(sync_every=3, items_per_step=8)
  for i in range(n):
    values = {"loss": 1.0 / (i + 1), "lr": 0.1 * 0.9**i}
    if i % 2 == 0:
      values["grad_norm"] = math.sqrt(i + 0.1)
    mon.step(**values)
  mon.close()
  return mon


def test_json_round_trip(tmp_path):
  mon = _run()
  mon.step = None  # closed: the export must not need anything else
  mon.to_json(tmp_path / "m.json")
  back = M.load_json(tmp_path / "m.json")
  assert back["steps"] == mon.records
  assert back["summary"] == json.loads(json.dumps(mon.summary()))


def test_json_keeps_nan(tmp_path):
  mon = quiet()
  mon.step(loss=math.nan)
  mon.close()
  mon.to_json(tmp_path / "m.json")
  assert math.isnan(M.load_json(tmp_path / "m.json")["steps"][0]["loss"])


def test_csv_round_trip_is_exact(tmp_path):
  mon = _run()
  mon.to_csv(tmp_path / "m.csv")
  back = M.load_csv(tmp_path / "m.csv")
  assert back == mon.records  # floats written with repr read back bit for bit; missing grad_norm dropped
  assert "grad_norm" not in back[1] and "grad_norm" in back[2]


def test_plot(tmp_path):
  pytest.importorskip("matplotlib")
  import matplotlib.pyplot as plt

  mon = _run()
  fig = mon.plot(tmp_path / "m.png")
  assert (tmp_path / "m.png").stat().st_size > 0
  assert len(fig.axes) == 4  # time per step + loss, lr, grad_norm
  plt.close(fig)
  fig = M.plot_records(M.load_csv(_csv(tmp_path, mon)), keys=["loss"])
  assert len(fig.axes) == 2
  plt.close(fig)


def _csv(tmp_path, mon):
  mon.to_csv(tmp_path / "p.csv")
  return tmp_path / "p.csv"


# --- output ---------------------------------------------------------------------------------------


def test_output_none_writes_nothing():
  stream = io.StringIO()
  mon = M.Monitor(total_steps=5, output="none", stream=stream, memory=False)
  for i in range(5):
    mon.step(loss=float(i))
  mon.close()
  assert stream.getvalue() == ""


def test_plain_output_to_a_log_is_throttled():
  stream = io.StringIO()
  ticks = itertools.count(0.0, 1.0)  # 1 s per clock reading
  mon = M.Monitor(total_steps=40, sync_every=2, output="plain", stream=stream, refresh_s=5.0, memory=False,
                  clock=lambda: next(ticks))
  for i in range(40):
    mon.step(loss=float(i), lr=1e-3)
  mon.close()
  lines = stream.getvalue().splitlines()
  progress = [ln for ln in lines if ln.startswith("train ")]
  # 21 syncs, 1 s apart: the first, then one line per 5 s, and the last
  assert 4 <= len(progress) <= 7
  assert progress[-1].startswith("train 40/40") and "loss 39" in progress[-1] and "lr 0.001" in progress[-1]
  assert "train: summary" in lines and any("compile (estimate)" in ln for ln in lines)


def test_rich_output():
  pytest.importorskip("rich")
  stream = io.StringIO()
  mon = M.Monitor(total_steps=6, sync_every=2, output="rich", stream=stream, memory=False)
  for i in range(6):
    mon.step(loss=float(i))
  mon.close()
  text = stream.getvalue()
  assert "train 6/6" in text and "summary" in text


# --- memory ---------------------------------------------------------------------------------------


class FakeDevice:
  def __init__(self, stats):
    self.stats = stats

  def memory_stats(self):
    if isinstance(self.stats, Exception):
      raise self.stats
    return self.stats


def test_device_peak_bytes():
  assert M.device_peak_bytes([FakeDevice({"peak_bytes_in_use": 10, "bytes_in_use": 3}),
                              FakeDevice({"peak_bytes_in_use": 30}), FakeDevice(None)]) == 30
  assert M.device_peak_bytes([FakeDevice(None), FakeDevice(RuntimeError("no stats")), FakeDevice({})]) is None
  assert M.device_peak_bytes([]) is None


def test_memory_is_read_at_syncs_and_kept_at_its_peak():
  dev = FakeDevice({"peak_bytes_in_use": 100})
  mon = M.Monitor(output="none", sync_every=2, devices=[dev])
  mon.step(loss=1.0)
  dev.stats = {"peak_bytes_in_use": 500}
  mon.step(loss=1.0)
  mon.step(loss=1.0)
  dev.stats = {"peak_bytes_in_use": 200}  # a reset peak counter does not lower the recorded peak
  mon.step(loss=1.0)
  s = mon.close()
  assert s["peak_device_bytes"] == 500
  assert s["peak_host_rss_bytes"] is None or s["peak_host_rss_bytes"] > 1 << 20  # at least a MiB: it is python
  assert M.host_peak_rss_bytes() is None or M.host_peak_rss_bytes() >= s["peak_host_rss_bytes"]


def test_real_devices_memory_reading():
  mon = M.Monitor(output="none")
  mon.step(loss=jnp.ones(()))
  peak = mon.close()["peak_device_bytes"]
  if jax.default_backend() == "cpu":  # the CPU backend reports no memory_stats
    assert peak is None
  else:  # GPU/TPU report peak_bytes_in_use
    assert isinstance(peak, int) and peak > 0


# --- learning rate --------------------------------------------------------------------------------


def test_learning_rate_reads_the_step_counter():
  s = ll.schedules.step_lr(0.1, step_size=1, gamma=0.5)
  tx = ll.optim.adam(lr=s)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  assert float(M.learning_rate(state, s)) == 0.1
  for k in range(1, 4):
    _, state = jax.jit(tx.update)({"w": jnp.ones(3)}, state, params)
    assert float(jax.jit(M.learning_rate, static_argnums=1)(state, s)) == pytest.approx(0.1 * 0.5**k)
  assert float(M.learning_rate(state, 0.3)) == pytest.approx(0.3)


def test_learning_rate_with_optax_schedules():
  s = optax.linear_schedule(1.0, 0.0, 10)
  tx = optax.adam(s)
  params = jnp.ones(2)
  state = tx.init(params)
  for _ in range(3):
    _, state = tx.update(jnp.ones(2), state, params)
  assert float(M.learning_rate(state, s)) == pytest.approx(0.7)


def test_learning_rate_refuses_to_guess():
  s = ll.schedules.exponential_lr(0.1, 0.9)
  with pytest.raises(ValueError, match="found none"):
    M.learning_rate(optax.sgd(0.1).init(jnp.ones(2)), s)
  tx = ll.optim.param_groups({"a": ll.optim.sgd(lr=s), "b": ll.optim.sgd(lr=s)}, {"x": "a", "y": "b"})
  state = tx.init({"x": jnp.ones(2), "y": jnp.ones(2)})
  with pytest.raises(ValueError, match="expected one lr step counter, found 2"):
    M.learning_rate(state, s)


# --- training loops -------------------------------------------------------------------------------


def _data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(32, 4)).astype(np.float32)
  return jnp.asarray(x), jnp.asarray(x @ np.arange(1.0, 5.0, dtype=np.float32)[:, None])


def test_nnx_loop():
  from flax import nnx

  x, y = _data()
  sched = ll.schedules.cosine_schedule_with_warmup(0.05, 2, 12)
  model = nnx.Linear(4, 1, rngs=nnx.Rngs(0), param_dtype=jnp.float32)
  opt = nnx.Optimizer(model, ll.optim.sgd(lr=sched), wrt=nnx.Param)

  @nnx.jit
  def train_step(model, opt, x, y):
    loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    opt.update(model, grads)
    return loss, ll.monitor.learning_rate(opt.opt_state, sched), optax.tree.norm(grads)

  mon = quiet(total_steps=12, sync_every=5, items_per_step=32)
  for _ in range(12):
    loss, lr, gnorm = train_step(model, opt, x, y)
    mon.step(loss=loss, lr=lr, grad_norm=gnorm)
  s = mon.close()
  assert s["steps"] == 12 and s["syncs"] == 4
  np.testing.assert_allclose([r["lr"] for r in mon.records], [float(sched(k + 1)) for k in range(12)], rtol=1e-14)
  assert mon.records[-1]["loss"] < mon.records[0]["loss"]


def test_pure_optax_loop_under_scan_free_jit():
  x, y = _data()
  sched = ll.schedules.linear_schedule_with_warmup(0.05, 2, 10)
  tx = optax.chain(optax.clip_by_global_norm(10.0), ll.optim.adam(lr=sched))
  params = {"w": jnp.zeros((4, 1), jnp.float32)}
  state = tx.init(params)

  @jax.jit
  def train_step(params, state):
    loss, grads = jax.value_and_grad(lambda p: jnp.mean((x @ p["w"] - y) ** 2))(params)
    lr = ll.monitor.learning_rate(state, sched)  # the lr this update uses
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss, lr

  mon = quiet(sync_every=4)
  for _ in range(10):
    params, state, loss, lr = train_step(params, state)
    mon.step((params, state), loss=loss, lr=lr)
  mon.close()
  np.testing.assert_allclose([r["lr"] for r in mon.records], [float(sched(k)) for k in range(10)], rtol=1e-14)
  assert mon.records[-1]["loss"] < mon.records[0]["loss"]
