"""ConvNet-3: shapes, per-image (stateless) instance norm, and it learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddistill import distill
from ddistill import inits
from ddistill import models
from ddistill.models import convnet
from ddistill.models import layers

import finite_differences

XAVIER = inits.kernel_initializer('xavier_normal')


def _net(shape, num_classes=10, conv_impl='auto'):
  model = models.make_model('convnet', num_classes, shape, XAVIER, conv_impl)
  # Jitted: op-by-op, a 128-channel net is slow on CPU.
  init = jax.jit(lambda key: inits.init_params(model, key, shape))
  return model, init(jax.random.key(0))


@pytest.mark.parametrize('shape', [(28, 28, 1), (32, 32, 3), (8, 8, 1),
                                   (12, 10, 2)])
def test_logits_for_any_size_from_8(shape):
  model, params = _net(shape, num_classes=7)
  x = jax.random.normal(jax.random.key(1), (3, *shape))
  logits = jax.jit(models.Apply(model))(params, x)
  assert logits.shape == (3, 7) and bool(jnp.all(jnp.isfinite(logits)))
  # 3 blocks of width 128, each halving the side (rounding down); as in
  # the DC code, grayscale images are padded by 3 first (MNIST: 32x32, so
  # 4 x 4 x 128 = 2,048 features).
  grow = 4 if shape[2] == 1 else 0
  h, w = (shape[0] + grow) // 8, (shape[1] + grow) // 8
  assert params['Dense_0']['kernel'].shape == (h * w * 128, 7)
  assert params['Conv_0']['kernel'].shape == (3, 3, shape[2], 128)


def test_too_small_images_are_refused():
  with pytest.raises(ValueError, match='at least 8x8'):
    models.make_model('convnet', 10, (7, 7, 1), XAVIER)


def test_instance_norm_normalizes_each_image_and_channel_alone():
  x = 3.0 + 2.0 * jax.random.normal(jax.random.key(2), (4, 6, 5, 8))
  norm = convnet.instance_norm()
  y = jax.jit(norm.apply)(norm.init(jax.random.key(0), x), x)
  np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(y.var(axis=(1, 2)), 1.0, rtol=1e-3)
  # No batch statistics: an image's logits do not depend on its batch.
  model, params = _net((16, 16, 1))
  batch = jax.random.normal(jax.random.key(3), (5, 16, 16, 1))
  apply_fn = jax.jit(models.Apply(model))
  alone = apply_fn(params, batch[:1])
  together = apply_fn(params, batch)[:1]
  np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-6)


def test_it_trains_and_its_inner_steps_differentiate():
  shape = (12, 12, 1)
  model, params = _net(shape)
  apply_fn = models.Apply(model)
  x = jax.random.normal(jax.random.key(4), (20, *shape))
  y = jnp.arange(20) % 10
  loss = jax.jit(lambda p: distill.cross_entropy(apply_fn(p, x), y))
  step = jax.jit(lambda p: distill.gd_step(apply_fn, p, x, y, 0.05))
  before = float(loss(params))
  for _ in range(40):
    params = step(params)
  assert float(loss(params)) < 0.2 * before, (before, float(loss(params)))

  # The meta-gradient through a GD step (differentiated twice) is finite
  # and reaches the images.
  _, params0 = _net(shape)
  outer = lambda images: distill.cross_entropy(
      apply_fn(distill.gd_step(apply_fn, params0, images, y, 0.05), x), y)
  grad = jax.jit(jax.grad(outer))(x)
  assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0


@pytest.mark.parametrize('conv_impl', layers.CONV_IMPLS)
def test_meta_gradient_through_instance_norm_matches_finite_differences(
    conv_impl):
  # test_meta_grad checks LeNet's pieces; this adds instance norm and average
  # pooling, differentiated twice through the inner steps (a narrow net, so
  # float64 differences stay cheap).
  with jax.enable_x64(True):
    loss_fn, distilled, _ = finite_differences.outer_loss_problem(
        convnet.ConvNet(3, XAVIER, conv_impl, width=4), (8, 8, 1), epochs=1)
    loss = jax.jit(loss_fn)
    grads = finite_differences.check(loss, distilled, 'images')
    finite_differences.check(loss, distilled, 'raw_lrs', grads)
    assert float(jnp.abs(grads['images']).max()) > 1e-6
