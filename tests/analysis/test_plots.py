"""The plot functions write non-trivial PNGs; a missing matplotlib names the `plot` extra."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from losslab_jax import analysis

@pytest.fixture
def mpl_image():
  """The plot tests need matplotlib; the missing-matplotlib test runs without it."""
  return pytest.importorskip("matplotlib.image")


def _check_png(path, mpl_image):
  assert path.exists() and path.stat().st_size > 10_000
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  pixels = mpl_image.imread(path)
  assert pixels.shape[0] > 300 and pixels.shape[1] > 500
  assert pixels[..., :3].std() > 0.05  # not a blank canvas


def _loss(w):
  return jnp.sum(w["a"] ** 2) + jnp.sum(jnp.cos(3.0 * w["b"]))


_PARAMS = {"a": jnp.array([[1.0, -0.5], [0.3, 0.8]]), "b": jnp.array([0.2, -0.1])}


@pytest.mark.parametrize("dims", [1, 2])
def test_plot_landscape(tmp_path, dims, mpl_image):
  res = analysis.loss_landscape(_loss, _PARAMS, key=jax.random.key(0), num_points=9, dims=dims)
  out = analysis.plot_landscape(res, tmp_path / f"landscape_{dims}d.png")
  _check_png(out, mpl_image)


def test_plot_gradient_flow(tmp_path, mpl_image):
  res = analysis.gradient_flow(lambda p: _loss(p) + 0.0 * jnp.sum(p["c"]), {**_PARAMS, "c": jnp.ones(3)},
                               exploding_threshold=2.0)
  assert res.vanishing_layers() == ["c"] and res.exploding_layers() == ["a"]
  _check_png(analysis.plot_gradient_flow(res, tmp_path / "flow.png"), mpl_image)


def test_plot_lr_range(tmp_path, mpl_image):
  res = analysis.lr_range_test(lambda w: 0.5 * jnp.sum(w**2), jnp.ones(3), min_lr=1e-3, max_lr=1e2,
                               num_steps=60)
  assert bool(res.diverged)
  _check_png(analysis.plot_lr_range(res, str(tmp_path / "lr.png")), mpl_image)


def test_missing_matplotlib_names_the_plot_extra(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "matplotlib", None)
  monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
  res = analysis.check_convergence(np.ones(3))  # any result: the import fails first
  with pytest.raises(ImportError, match=r"losslab_jax\[plot\]"):
    analysis.plot_lr_range(res, tmp_path / "x.png")
