"""schemes: the imbalance bands, each scheme's loss (against numpy), schedule (hand math) and spec.

The chosen-loss tests check both what the scheme says it built (``spec``) and what ``loss_fn``
computes, against independent numpy formulas.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losslab_jax as ll
from losslab_jax import config, schemes
from tests.helpers import assert_close

F64 = jnp.float64


def np_log_softmax(logits):
  z = logits - logits.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_ce(logits, labels, weight=None):
  lp = np_log_softmax(np.asarray(logits, np.float64)).reshape(-1, logits.shape[-1])
  labels = np.asarray(labels).reshape(-1)
  w = np.ones(lp.shape[1]) if weight is None else np.asarray(weight)
  picked = lp[np.arange(len(labels)), labels]
  return float(np.sum(-picked * w[labels]) / np.sum(w[labels]))


def np_focal(logits, labels, alpha, gamma):
  lp = np_log_softmax(np.asarray(logits, np.float64))[np.arange(len(labels)), labels]
  return float(np.mean(-np.asarray(alpha)[labels] * (1 - np.exp(lp)) ** gamma * lp))


def data(n=16, c=3, seed=0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, c)), rng.integers(0, c, n)


# --- imbalance bands ------------------------------------------------------------------------------------


@pytest.mark.parametrize("counts,ratio,level", [
    ([100, 100, 100], 1.0, "balanced"),
    ([199, 100], 1.99, "balanced"),
    ([200, 100], 2.0, "mild"),
    ([999, 100], 9.99, "mild"),
    ([1000, 100], 10.0, "moderate"),
    ([9999, 100], 99.99, "moderate"),
    ([10000, 100], 100.0, "severe"),
    ([5, 50000, 40], 10000.0, "severe"),
])
def test_imbalance_bands(counts, ratio, level):
  imb = schemes.imbalance(counts)
  assert imb.level == level
  assert math.isclose(imb.ratio, ratio)
  n, k = sum(counts), len(counts)
  assert_close(imb.weights, [n / (k * c) for c in counts])


def test_imbalance_weights_agree_with_losses_class_weights():
  labels = np.repeat(np.arange(4), [50, 7, 300, 1])
  imb = schemes.imbalance(np.bincount(labels, minlength=4))
  assert_close(imb.weights, ll.losses.class_weights(jnp.asarray(labels), 4))


def test_imbalance_accepts_bincount_output():
  labels = np.array([0, 0, 0, 1, 2, 2])
  imb = schemes.imbalance(np.bincount(labels, minlength=3))
  assert_close(imb.weights, [6 / 9, 2.0, 1.0])


@pytest.mark.parametrize("counts,pattern", [
    pytest.param([10], r"one count per class \(at least 2\), got shape \(1,\)", id="one-class"),
    pytest.param([[1, 2]], r"got shape \(1, 2\)", id="2d"),
    pytest.param([10, 0, 3], r"positive whole counts for every class, got \[10, 0, 3\] \(class\(es\) \[1\]\)",
                 id="zero"),
    pytest.param([10, 2.5], r"positive whole counts", id="fraction"),
    pytest.param(["a", "b"], r"expected numeric class_counts", id="strings"),
])
def test_imbalance_errors(counts, pattern):
  with pytest.raises(ValueError, match="^schemes.imbalance: .*" + pattern):
    schemes.imbalance(counts)


# --- classification ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("counts,loss_name,has_weights", [
    (None, "cross_entropy", False),
    ([300, 280, 310], "cross_entropy", False),
    ([500, 100, 400], "cross_entropy", True),  # 1:5, mild
    ([3000, 100, 400], "cross_entropy", True),  # 1:30, moderate
    ([5000, 2000, 40], "focal_loss", True),  # 1:125, severe
])
def test_classification_chooses_by_imbalance(counts, loss_name, has_weights):
  scheme = schemes.classification(3, class_counts=counts)
  loss = scheme.spec["loss"]
  assert loss["name"] == loss_name
  logits, labels = data()
  got = float(scheme.loss_fn(jnp.asarray(logits, F64), jnp.asarray(labels)))
  if not has_weights:
    assert set(loss) == {"name"}
    assert_close(got, np_ce(logits, labels))
    return
  c = np.asarray(counts, np.float64)
  w = c.sum() / (3 * c)
  if loss_name == "focal_loss":
    assert loss["gamma"] == 2.0
    assert_close(loss["alpha"], w)
    assert_close(got, np_focal(logits, labels, w, 2.0))
  else:
    assert_close(loss["weight"], w)
    assert_close(got, np_ce(logits, labels, w))


def test_classification_rationale_names_the_band():
  severe = schemes.classification(3, class_counts=[5000, 2000, 40]).rationale
  assert "1:125" in severe and "severe" in severe and "focal loss" in severe
  assert "AdamW" in severe and "warmup" in severe
  moderate = schemes.classification(2, class_counts=[3000, 100]).rationale
  assert "1:30" in moderate and "moderate" in moderate and "oversampling" in moderate
  assert "balanced" in schemes.classification(4).rationale


def test_classification_optimizer_is_adamw_with_warmup_cosine():
  scheme = schemes.classification(5, lr=2e-3, weight_decay=0.05, total_steps=200)
  assert scheme.spec["optimizer"] == {"name": "adamw", "lr": 2e-3, "weight_decay": 0.05}
  assert scheme.spec["schedule"] == {"name": "warmup_cosine", "warmup_steps": 10, "total_steps": 200}
  # hand math: k / W * lr during warmup, then lr * (1 + cos(pi (k - W) / (T - W))) / 2
  expected = [0.0, 1e-3, 2e-3, 2e-3 * (1 + math.cos(math.pi * 95 / 190)) / 2, 0.0]
  assert_close([scheme.schedule(k) for k in (0, 5, 10, 105, 200)], expected, rtol=1e-14, atol=1e-15)
  # the optimizer applies that schedule: the same updates as building AdamW with it by hand
  direct = ll.optim.adamw(lr=ll.schedules.warmup_cosine(2e-3, 10, 200), weight_decay=0.05)
  p = {"w": jnp.asarray([0.5, -1.0], F64)}
  s1, s2 = scheme.optimizer.init(p), direct.init(p)
  for k in range(12):
    g = {"w": jnp.asarray([math.sin(k), math.cos(k)], F64)}
    u1, s1 = scheme.optimizer.update(g, s1, p)
    u2, s2 = direct.update(g, s2, p)
    assert_close(u1["w"], u2["w"])


def test_classification_warmup_and_clipping_options():
  scheme = schemes.classification(3, total_steps=50, warmup_steps=0, max_grad_norm=0.5)
  assert scheme.spec["schedule"]["warmup_steps"] == 0
  assert scheme.spec["gradient_clipping"] == {"max_norm": 0.5}
  assert "Gradient clipping" in scheme.rationale


@pytest.mark.parametrize("forced,counts,name,key", [
    ("cross_entropy", [5000, 40], "cross_entropy", None),
    ("weighted_cross_entropy", [5000, 40], "cross_entropy", "weight"),
    ("focal_loss", None, "focal_loss", None),
    ("focal_loss", [100, 100], "focal_loss", "alpha"),
])
def test_classification_forced_loss(forced, counts, name, key):
  loss = schemes.classification(2, class_counts=counts, loss=forced).spec["loss"]
  assert loss["name"] == name
  assert (key in loss) if key else ("weight" not in loss and "alpha" not in loss)


def test_classification_label_smoothing_reaches_the_loss():
  scheme = schemes.classification(3, label_smoothing=0.1)
  logits, labels = data()
  lp = np_log_softmax(logits)
  expected = np.mean(0.9 * -lp[np.arange(16), labels] + 0.1 * -lp.mean(-1))
  assert_close(scheme.loss_fn(jnp.asarray(logits, F64), jnp.asarray(labels)), expected)


@pytest.mark.parametrize("kwargs,pattern", [
    pytest.param(dict(num_classes=1), r"num_classes to be an int >= 2, got 1", id="one-class"),
    pytest.param(dict(num_classes=3, class_counts=[5, 5]), r"expected 3 class_counts \(one per class\), got 2",
                 id="count-length"),
    pytest.param(dict(num_classes=2, loss="hinge"), r"expected loss to be one of 'auto', 'cross_entropy'", id="loss"),
    pytest.param(dict(num_classes=2, loss="weighted_cross_entropy"), r"needs class_counts", id="weighted-no-counts"),
    pytest.param(dict(num_classes=2, class_counts=[5000, 20], label_smoothing=0.1),
                 r"label_smoothing=0.1 is not available with focal_loss \(chosen for severe imbalance\)",
                 id="smoothing-focal"),
    pytest.param(dict(num_classes=2, lr=0.0), r"expected lr > 0, got 0.0", id="lr"),
    pytest.param(dict(num_classes=2, total_steps=0), r"total_steps to be an int >= 1", id="steps"),
    pytest.param(dict(num_classes=2, total_steps=10, warmup_steps=10), r"warmup_steps to be an int in \[0, total_steps=10\)",
                 id="warmup"),
    pytest.param(dict(num_classes=2, max_grad_norm=0), r"max_grad_norm > 0 or None", id="clip"),
])
def test_classification_errors(kwargs, pattern):
  with pytest.raises(ValueError, match="^schemes.classification: .*" + pattern):
    schemes.classification(**kwargs)


def test_classification_loss_checks_the_class_axis():
  scheme = schemes.classification(4)
  with pytest.raises(ValueError, match=r"schemes.classification: expected logits with num_classes=4 on the last axis,"
                     r" got shape \(5, 3\)"):
    scheme.loss_fn(jnp.zeros((5, 3), F64), jnp.zeros(5, jnp.int32))


# --- regression --------------------------------------------------------------------------------------------


def np_regression(kind, x, y, **kw):
  e = x - y
  if kind == "mse":
    return np.mean(e ** 2)
  if kind == "l1":
    return np.mean(np.abs(e))
  if kind == "huber":
    d = kw.get("delta", 1.0)
    return np.mean(np.where(np.abs(e) <= d, 0.5 * e ** 2, d * (np.abs(e) - 0.5 * d)))
  if kind == "smooth_l1":
    b = kw.get("beta", 1.0)
    return np.mean(np.where(np.abs(e) < b, 0.5 * e ** 2 / b, np.abs(e) - 0.5 * b))
  if kind == "asymmetric":
    return np.mean(np.where(e < 0, kw.get("under_penalty", 2.0), kw.get("over_penalty", 1.0)) * e ** 2)
  raise KeyError(kind)


@pytest.mark.parametrize("kind,kw", [
    ("mse", {}), ("l1", {}), ("huber", {}), ("huber", {"delta": 0.5}), ("smooth_l1", {"beta": 0.3}),
    ("asymmetric", {}), ("asymmetric", {"under_penalty": 5.0, "over_penalty": 0.5}),
])
def test_regression_losses(kind, kw):
  rng = np.random.default_rng(1)
  x, y = 2 * rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
  scheme = schemes.regression(kind, **kw)
  assert_close(scheme.loss_fn(jnp.asarray(x, F64), jnp.asarray(y, F64)), np_regression(kind, x, y, **kw))
  assert scheme.spec["loss"] == {"name": schemes._schemes._REGRESSION_TEXT[kind][0], **kw}


def test_regression_schedule_is_cosine_annealing():
  scheme = schemes.regression(lr=0.01, total_steps=100)
  assert scheme.spec["optimizer"] == {"name": "adamw", "lr": 0.01, "weight_decay": 1e-4}
  assert_close([scheme.schedule(k) for k in (0, 50, 100)], [0.01, 0.005, 0.0], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("args,kwargs,pattern", [
    pytest.param(("mae",), {}, r"loss_type to be one of 'mse', 'l1', 'huber', 'smooth_l1', 'asymmetric', got 'mae'",
                 id="unknown"),
    pytest.param(("mse",), {"delta": 1.0}, r"delta= applies to loss_type='huber', not 'mse'", id="delta-mse"),
    pytest.param(("huber",), {"under_penalty": 3.0}, r"under_penalty= applies to loss_type='asymmetric'", id="under"),
    pytest.param(("l1",), {"beta": 0.5}, r"beta= applies to loss_type='smooth_l1'", id="beta"),
    pytest.param(("mse",), {"weight_decay": -1.0}, r"weight_decay >= 0", id="wd"),
])
def test_regression_errors(args, kwargs, pattern):
  with pytest.raises(ValueError, match="^schemes.regression: .*" + pattern):
    schemes.regression(*args, **kwargs)


# --- segmentation ------------------------------------------------------------------------------------------


def np_dice(logits, labels, smooth):
  p = np.exp(np_log_softmax(logits))
  onehot = np.eye(logits.shape[-1])[labels]
  axes = tuple(range(1, logits.ndim - 1))
  inter = (p * onehot).sum(axes)
  card = p.sum(axes) + onehot.sum(axes)
  return float(np.mean(1 - (2 * inter + smooth) / (card + smooth)))


def test_segmentation_loss_is_dice_plus_cross_entropy():
  rng = np.random.default_rng(2)
  logits, labels = rng.normal(size=(2, 5, 6, 4)), rng.integers(0, 4, (2, 5, 6))
  scheme = schemes.segmentation(4, dice_weight=0.7, ce_weight=1.5, smooth=0.5)
  got = scheme.loss_fn(jnp.asarray(logits, F64), jnp.asarray(labels))
  # the library's dice reduces per (sample, class); check our numpy reading of it first
  assert_close(ll.losses.dice_loss(jnp.asarray(logits, F64), jnp.asarray(labels), smooth=0.5),
               np_dice(logits, labels, 0.5))
  assert_close(got, 0.7 * np_dice(logits, labels, 0.5) + 1.5 * np_ce(logits, labels))


def test_segmentation_poly_schedule_and_spec():
  scheme = schemes.segmentation(3, lr=0.01, total_steps=100, power=0.9)
  assert [t["name"] for t in scheme.spec["loss"]["terms"]] == ["dice_loss", "cross_entropy"]
  assert_close([scheme.schedule(k) for k in (0, 50, 100)], [0.01, 0.01 * 0.5 ** 0.9, 0.0], rtol=1e-14, atol=1e-15)
  assert "poly" in scheme.rationale and "dice" in scheme.rationale


def test_segmentation_single_term():
  only_ce = schemes.segmentation(3, dice_weight=0.0)
  assert [t["name"] for t in only_ce.spec["loss"]["terms"]] == ["cross_entropy"]


@pytest.mark.parametrize("kwargs,pattern", [
    pytest.param(dict(num_classes=1), r"num_classes to be an int >= 2", id="classes"),
    pytest.param(dict(num_classes=3, dice_weight=0.0, ce_weight=0.0), r"not both 0", id="weights"),
    pytest.param(dict(num_classes=3, power=0.0), r"power > 0", id="power"),
])
def test_segmentation_errors(kwargs, pattern):
  with pytest.raises(ValueError, match="^schemes.segmentation: .*" + pattern):
    schemes.segmentation(**kwargs)


def test_segmentation_loss_checks_the_class_axis():
  with pytest.raises(ValueError, match=r"num_classes=3 on the last axis, got shape \(1, 4, 4, 2\)"):
    schemes.segmentation(3).loss_fn(jnp.zeros((1, 4, 4, 2), F64), jnp.zeros((1, 4, 4), jnp.int32))


# --- metric learning ---------------------------------------------------------------------------------------


def test_metric_learning_triplet():
  rng = np.random.default_rng(4)
  a, p, n = (rng.normal(size=(8, 5)) for _ in range(3))
  scheme = schemes.metric_learning("triplet", margin=0.5)
  d = lambda u, v: np.sqrt(((u - v + 1e-6) ** 2).sum(-1))  # noqa: E731  torch's pairwise_distance eps
  expected = np.mean(np.maximum(d(a, p) - d(a, n) + 0.5, 0.0))
  assert_close(scheme.loss_fn(*(jnp.asarray(v, F64) for v in (a, p, n))), expected)
  assert scheme.spec["loss"] == {"name": "triplet_margin_loss", "margin": 0.5}
  assert schemes.metric_learning("triplet", p=1.0, swap=True).spec["loss"] == \
      {"name": "triplet_margin_loss", "margin": 1.0, "p": 1.0, "swap": True}


def test_metric_learning_contrastive():
  rng = np.random.default_rng(5)
  x1, x2 = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
  target = rng.integers(0, 2, 8).astype(np.float64)
  scheme = schemes.metric_learning("contrastive", margin=2.0)
  dist = np.sqrt(((x1 - x2 + 1e-6) ** 2).sum(-1))
  expected = np.mean((1 - target) * dist ** 2 + target * np.maximum(2.0 - dist, 0) ** 2)
  got = scheme.loss_fn(jnp.asarray(x1, F64), jnp.asarray(x2, F64), jnp.asarray(target, F64))
  assert_close(got, expected, rtol=1e-9)


@pytest.mark.parametrize("args,kwargs,pattern", [
    pytest.param(("quadruplet",), {}, r"kind to be one of 'triplet', 'contrastive'", id="kind"),
    pytest.param(("contrastive",), {"p": 1.0}, r"p= and swap= apply to kind='triplet'", id="p"),
    pytest.param(("triplet",), {"margin": -1.0}, r"margin >= 0", id="margin"),
])
def test_metric_learning_errors(args, kwargs, pattern):
  with pytest.raises(ValueError, match="^schemes.metric_learning: .*" + pattern):
    schemes.metric_learning(*args, **kwargs)


# --- specs, YAML examples, training ---------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    pytest.param(lambda: schemes.classification(3, [5000, 2000, 40], max_grad_norm=1.0), id="classification"),
    pytest.param(lambda: schemes.regression("huber"), id="regression"),
    pytest.param(lambda: schemes.segmentation(4), id="segmentation"),
    pytest.param(lambda: schemes.metric_learning("contrastive"), id="metric_learning"),
])
def test_spec_rebuilds_the_scheme(make):
  scheme = make()
  again = config.build(scheme.spec)
  for k in (0, 1, 37, 999):
    assert_close(again.schedule(k), scheme.schedule(k))
  assert again.spec == scheme.spec
  yaml = pytest.importorskip("yaml")
  assert yaml.safe_load(yaml.safe_dump(dict(scheme.spec))) == scheme.spec  # plain, YAML-serialisable data


@pytest.mark.parametrize("name,make", [
    ("classification", lambda: schemes.classification(3, [5000, 2000, 40], total_steps=2000, warmup_steps=100,
                                                      max_grad_norm=1.0)),
    ("regression", lambda: schemes.regression("huber", delta=1.0, total_steps=5000)),
    ("segmentation", lambda: schemes.segmentation(4, total_steps=10000)),
    ("metric_learning", lambda: schemes.metric_learning("triplet", margin=0.2, total_steps=3000)),
])
def test_example_yaml_is_the_scheme_it_says(name, make):
  pytest.importorskip("yaml")
  from_yaml = config.load(config.examples()[name])
  spec = make().spec
  for section in ("optimizer", "schedule", "gradient_clipping"):
    assert from_yaml.get(section) == spec.get(section), section
  got, want = from_yaml["loss"], spec["loss"]
  assert set(got) == set(want)
  for key in want:
    if isinstance(want[key], list) and want[key] and isinstance(want[key][0], float):
      assert_close(got[key], want[key], rtol=1e-6)   # the YAML writes these (class weights) with 6 decimals
    else:
      assert got[key] == want[key], key


def _train(scheme, loss_fn, params, args, steps):
  tx = scheme.optimizer

  @jax.jit
  def run(params):
    def step(carry, _):
      p, s = carry
      loss, g = jax.value_and_grad(loss_fn)(p, *args)
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), loss

    (p, _), losses = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    return p, losses

  return run(params)


def test_schemes_train_a_linear_classifier():
  rng = np.random.default_rng(6)
  x = rng.normal(size=(200, 2))
  y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)
  scheme = schemes.classification(2, class_counts=np.bincount(y), lr=0.05, total_steps=150)
  params = {"w": jnp.zeros((2, 2), F64), "b": jnp.zeros((1, 2), F64)}

  def loss_fn(p, x, y):
    return scheme.loss_fn(x @ p["w"] + p["b"], y)

  p, losses = _train(scheme, loss_fn, params, (jnp.asarray(x, F64), jnp.asarray(y)), 150)
  acc = float(jnp.mean(jnp.argmax(jnp.asarray(x, F64) @ p["w"] + p["b"], -1) == y))
  assert float(losses[-1]) < 0.5 * float(losses[0])
  assert acc > 0.95


def test_regression_scheme_fits_a_line():
  rng = np.random.default_rng(7)
  x = rng.uniform(-1, 1, size=(100, 1))
  y = 3 * x - 1
  scheme = schemes.regression("l1", lr=0.05, total_steps=400)
  loss_fn = lambda p, x, y: scheme.loss_fn(x * p["w"] + p["b"], y)  # noqa: E731
  p, _ = _train(scheme, loss_fn, {"w": jnp.zeros((1, 1), F64), "b": jnp.zeros((1, 1), F64)},
                (jnp.asarray(x, F64), jnp.asarray(y, F64)), 400)
  assert_close([p["w"][0, 0], p["b"][0, 0]], [3.0, -1.0], rtol=0, atol=0.05)   # after 400 training steps
