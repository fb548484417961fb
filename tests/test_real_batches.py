"""Real batches: shuffled epochs without replacement, and the official transforms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddistill import real_batches


def _indices(step, sampling='epochs', n=10, b=3):
  return np.asarray(real_batches.batch_indices(
      jax.random.key(step), jnp.int32(step), sampling=sampling,
      num_examples=n, batch_size=b, epoch_key=jax.random.key(7)))


def test_epochs_draw_every_example_once_per_epoch():
  # 10 examples in batches of 3: an epoch is 3 batches; one is left over.
  for epoch in range(3):
    seen = np.concatenate([_indices(3 * epoch + i) for i in range(3)])
    assert len(set(seen.tolist())) == 9
  assert not np.array_equal(_indices(0), _indices(3))  # A new shuffle.
  with pytest.raises(ValueError, match='exceeds'):
    _indices(0, b=11)


def test_iid_batches_are_drawn_per_iteration():
  assert _indices(0, 'iid').shape == (3,)
  assert not np.array_equal(_indices(0, 'iid', b=8), _indices(1, 'iid', b=8))


def test_crop_flip_moves_pixels_and_keeps_them_real():
  x = jax.random.normal(jax.random.key(0), (64, 8, 8, 3))
  y = real_batches.augment(jax.random.key(1), x, 'crop_flip')
  assert y.shape == x.shape
  # Reflect padding only repeats pixels: each output image's values come
  # from its own input image.
  for i in range(4):
    assert np.isin(np.asarray(y[i]), np.asarray(x[i])).all()
  moved = np.any(np.asarray(y) != np.asarray(x), axis=(1, 2, 3))
  assert moved.mean() > 0.5  # Most images change (1 in 162 keeps its place).


def test_resized_crop_flip_is_a_smooth_resampling():
  x = jnp.broadcast_to(jnp.linspace(0, 1, 16)[None, :, None, None],
                       (8, 16, 16, 1))
  y = real_batches.augment(jax.random.key(2), x, 'resized_crop_flip')
  assert y.shape == x.shape and bool(jnp.all(jnp.isfinite(y)))
  assert not np.allclose(np.asarray(y), np.asarray(x))
  # A crop of a vertical ramp, flipped or not, is still a ramp: each row
  # constant, rising downwards (bicubic rounds a little near the edges).
  y = np.asarray(y)
  np.testing.assert_allclose(y, np.broadcast_to(y[:, :, :1], y.shape),
                             atol=1e-5)
  assert np.all(np.diff(y, axis=1) >= -1e-3)
  assert float(y.min()) > -0.1 and float(y.max()) < 1.1


def test_none_is_the_identity_and_unknown_names_fail():
  x = jnp.ones((2, 4, 4, 1))
  assert real_batches.augment(jax.random.key(0), x, 'none') is x
  with pytest.raises(ValueError, match="unknown augment 'mixup'"):
    real_batches.augment(jax.random.key(0), x, 'mixup')


def test_the_outer_step_augments_its_real_batch_with_the_iteration_key():
  import functools  # pylint: disable=g-import-not-at-top
  from ddistill import distill, inits, models  # pylint: disable=g-import-not-at-top
  model = models.make_model('lenet', 10, (28, 28, 1),
                            inits.kernel_initializer('xavier_normal'), 'xla')
  params0_I = inits.sample_params(model, jax.random.key(0), 1, (28, 28, 1))
  labels = distill.distilled_labels(1, 10, 1)
  d = distill.init_distilled(jax.random.key(1), labels, (28, 28, 1), 2, 0.02)
  optimizer = distill.make_optimizer(0.01, 0.5, 100, 0.5)
  state = {'distilled': d, 'opt_state': optimizer.init(d)}
  x = jax.random.normal(jax.random.key(2), (64, 28, 28, 1))
  y = jax.random.randint(jax.random.key(3), (64,), 0, 10)

  @functools.partial(jax.jit, static_argnums=0)
  def loss(name, key):
    augment = functools.partial(real_batches.augment, name=name)
    return distill.train_step(
        state, params0_I, x, y, key, apply_fn=models.Apply(model),
        labels_SxN=labels, optimizer=optimizer, batch_size=32,
        augment=augment)[1]['loss']

  k0, k1 = jax.random.key(10), jax.random.key(11)
  crop = float(loss('crop_flip', k0))
  assert crop == float(loss('crop_flip', k0))  # Deterministic in the key.
  assert crop != float(loss('crop_flip', k1))
  assert crop != float(loss('none', k0))  # Same batch, transformed.


def test_epochs_sampling_refuses_a_batch_larger_than_the_training_set():
  # Said before compiling, naming the field, not as a trace-time ValueError.
  from configs import mnist as mnist_config  # pylint: disable=g-import-not-at-top
  from ddistill import errors, train  # pylint: disable=g-import-not-at-top
  config = mnist_config.get_config()
  config.data.sampling, config.real_batch_size = 'epochs', 1000
  with pytest.raises(errors.ConfigError, match=r"real_batch_size = 1000 "
                     r"exceeds the 999 training examples, and data.sampling "
                     r"= 'epochs'"):
    train.real_batch_fns(config, 999)
  assert train.real_batch_fns(config, 1000)['batch_indices'] is not None
