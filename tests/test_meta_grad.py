"""Meta-gradients through the unrolled inner loop against finite differences."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddistill import distill
from ddistill import inits
from ddistill import models
from ddistill.models import layers

import finite_differences


class TinyConvNet(nn.Module):
  """The conv and pooling pieces LeNet uses, small enough for float64 FD."""
  conv_impl: str = 'matmul'

  @nn.compact
  def __call__(self, x):
    x = layers.Conv(3, 3, 1, nn.initializers.lecun_normal(), self.conv_impl)(x)
    x = layers.max_pool_2x2(nn.relu(x))
    x = x.reshape(x.shape[0], -1)
    return nn.Dense(3)(jnp.tanh(nn.Dense(8)(x)))


def _setup(conv_impl='matmul', steps=2, epochs=2):
  return finite_differences.outer_loss_problem(TinyConvNet(conv_impl),
                                               (6, 6, 1), steps, epochs)


@pytest.mark.parametrize('conv_impl', layers.CONV_IMPLS)
def test_meta_gradient_matches_finite_differences(conv_impl):
  with jax.enable_x64(True):
    loss_fn, distilled, _ = _setup(conv_impl)
    loss = jax.jit(loss_fn)
    grads = finite_differences.check(loss, distilled, 'images')
    finite_differences.check(loss, distilled, 'raw_lrs', grads)
    # Both parts actually receive gradient.
    assert float(jnp.abs(grads['images']).max()) > 1e-6
    assert float(jnp.abs(grads['raw_lrs']).max()) > 1e-6


def test_remat_gives_the_same_gradients():
  with jax.enable_x64(True):
    loss, distilled, _ = _setup(steps=3, epochs=2)
    g_remat = jax.grad(lambda d: loss(d, remat=True))(distilled)
    g_plain = jax.grad(lambda d: loss(d, remat=False))(distilled)
    for a, b in zip(jax.tree.leaves(g_remat), jax.tree.leaves(g_plain)):
      np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


def test_steps_are_applied_in_order_each_epoch():
  """Two epochs of [step0, step1] equal four explicit GD steps."""
  with jax.enable_x64(True):
    model = TinyConvNet()
    apply_fn = models.Apply(model)
    params = inits.init_params(model, jax.random.key(1), (6, 6, 1))
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    images = jax.random.normal(jax.random.key(2), (2, 3, 6, 6, 1),
                               jnp.float64)
    labels = distill.distilled_labels(2, 3, 1)
    lrs = jnp.array([0.1, 0.2, 0.3, 0.4], jnp.float64)
    got = distill.train_on_distilled(apply_fn, params, images, labels, lrs)
    want = params
    for t in range(4):
      want = distill.gd_step(apply_fn, want, images[t % 2], labels[t % 2],
                             lrs[t])
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(a, b, rtol=1e-12)


def test_softplus_parametrization_round_trips():
  lrs = jnp.array([1e-4, 0.02, 0.5, 3.0])
  np.testing.assert_allclose(distill.lrs_from_raw(distill.raw_from_lrs(lrs)),
                             lrs, rtol=1e-5)
