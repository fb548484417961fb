"""DSA: differentiable in the images, the identity at strength 0, Siamese."""

import functools

import jax
import jax.numpy as jnp
from jax import test_util
import numpy as np
import pytest

from configs import default
from ddistill import augment
from ddistill import config_checks
from ddistill import distill
from ddistill import errors
from ddistill import inits
from ddistill import models
from ddistill import train

KEYS = [jax.random.key(i) for i in range(8)]


@functools.partial(jax.jit, static_argnums=(0, 3))
def _augment(dsa, key, x, per_image=False):
  """_augment(dsa, key, x), jitted: eager map_coordinates is slow."""
  return dsa(key, x, per_image)


@functools.partial(jax.jit, static_argnums=0)
def _apply(dsa, params, x):
  return dsa.apply(params, x)


def _images(shape=(4, 9, 7, 3), seed=0):
  return jax.random.normal(jax.random.key(seed), shape)


@pytest.mark.parametrize('name', augment.TRANSFORMS)
def test_strength_zero_is_exactly_the_identity(name):
  x = _images()
  dsa = augment.DSA((name,), strength=0.0)
  for key in KEYS[:3]:
    np.testing.assert_array_equal(_augment(dsa, key, x), x)
    np.testing.assert_array_equal(_augment(dsa, key, x, True), x)


@pytest.mark.parametrize('name', augment.TRANSFORMS)
def test_positive_strength_changes_images_and_keeps_shapes(name):
  x = _images()
  dsa = augment.DSA((name,), strength=1.0)
  outputs = [_augment(dsa, key, x) for key in KEYS]
  assert all(y.shape == x.shape and y.dtype == x.dtype for y in outputs)
  # Flip keeps the images with probability 1/2 per key; 8 keys.
  assert sum(not np.array_equal(y, x) for y in outputs) >= 2


@pytest.mark.parametrize('name', augment.TRANSFORMS)
def test_gradients_match_finite_differences(name):
  x = _images((2, 6, 5, 2), seed=1)
  dsa = augment.DSA((name,), strength=1.0)
  for per_image in (False, True):
    params = dsa.sample_params(KEYS[3], 2 if per_image else 1)
    f = jax.jit(functools.partial(dsa.apply, params))
    # Forward- and reverse-mode derivatives against central differences.
    test_util.check_grads(f, (x,), order=1, modes=('fwd', 'rev'))
    w = _images(x.shape, seed=2)
    grad = jax.grad(lambda x: jnp.sum(w * f(x)))(x)
    assert float(jnp.abs(grad).max()) > 0.1


def test_crop_shifts_whole_pixels_with_zeros_shifted_in():
  x = jnp.arange(1.0, 1.0 + 8 * 8).reshape(1, 8, 8, 1)
  dsa = augment.DSA(('crop',), strength=1.0)
  shifts = set()
  for key in KEYS:
    y = np.asarray(_augment(dsa, key, x))[0, :, :, 0]
    # The one shift (dy, dx), |d| <= 1 (1/8 of 8), that explains y.
    matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
               if np.array_equal(y, _shifted(np.asarray(x)[0, :, :, 0], dy,
                                             dx))]
    assert len(matches) == 1
    shifts.add(matches[0])
  assert len(shifts) > 1


def _shifted(x_HxW, dy, dx):
  """out[i, j] = x[i + dy, j + dx], zero outside."""
  h, w = x_HxW.shape
  padded = np.pad(x_HxW, 1)
  return padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]


def test_scale_and_rotate_keep_the_centre_and_a_flat_interior():
  x = jnp.ones((1, 9, 9, 1))
  for name in ('scale', 'rotate'):
    dsa = augment.DSA((name,), strength=1.0)
    for key in KEYS[:4]:
      y = np.asarray(_augment(dsa, key, x))[0, :, :, 0]
      # A constant image resamples to itself away from the border.
      np.testing.assert_allclose(y[2:-2, 2:-2], 1.0, rtol=1e-6)
  # The centre pixel is the fixed point of both.
  x = _images((1, 9, 9, 1))
  for name in ('scale', 'rotate'):
    y = _augment(augment.DSA((name,)), KEYS[5], x)
    np.testing.assert_allclose(y[0, 4, 4], x[0, 4, 4], rtol=1e-6)


def test_cutout_zeroes_one_square_of_half_the_side():
  x = jnp.ones((1, 8, 8, 2))
  for key in KEYS:
    y = np.asarray(_augment(augment.DSA(('cutout',)), key, x))
    zero = y[0, :, :, 0] == 0
    np.testing.assert_array_equal(zero, y[0, :, :, 1] == 0)
    rows, cols = np.nonzero(zero)
    # A 4x4 square, cut where it meets the border.
    assert 0 < zero.sum() <= 16
    assert zero.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
    assert np.ptp(rows) < 4 and np.ptp(cols) < 4
    assert np.all(y[~np.broadcast_to(zero[..., None], y.shape[1:])[None]]
                  == 1)


def test_color_keeps_grey_images_grey_and_moves_brightness():
  x = _images((3, 6, 6, 1))
  y = _augment(augment.DSA(('color',)), KEYS[0], jnp.repeat(x, 3, axis=-1))
  # Saturation acts on the colour only: grey pixels stay grey.
  np.testing.assert_allclose(y, jnp.repeat(y[..., :1], 3, axis=-1), atol=1e-6)
  # Contrast keeps each image's mean, so the mean moves by the brightness
  # shift alone: one draw for the batch, the same for every image.
  shift = np.asarray(y.mean(axis=(1, 2, 3)) - x.mean(axis=(1, 2, 3)))
  np.testing.assert_allclose(shift, shift[0], atol=1e-5)
  assert 1e-3 < abs(shift[0]) <= 0.5 * augment.BRIGHTNESS


def test_the_same_key_draws_the_same_transform_for_any_batch():
  dsa = augment.DSA(augment.TRANSFORMS, strength=1.0, mode='all')
  small = _images((3, 8, 8, 3))
  large = jnp.concatenate([small, _images((5, 8, 8, 3), seed=9)])
  for key in KEYS[:4]:
    np.testing.assert_array_equal(_augment(dsa, key, large)[:3],
                                  _augment(dsa, key, small))
    params = dsa.sample_params(key)
    np.testing.assert_array_equal(_apply(dsa, params, small),
                                  _augment(dsa, key, small))
  # One draw for the batch: copies of an image stay copies; drawn per
  # image, they part.
  copies = jnp.broadcast_to(small[:1], (4, 8, 8, 3))
  y = _augment(dsa, KEYS[0], copies)
  assert all(np.array_equal(y[0], y[i]) for i in range(4))
  y = _augment(dsa, KEYS[0], copies, True)
  assert not any(np.array_equal(y[0], y[i]) for i in range(1, 4))
  # Another key, another transform.
  assert not np.array_equal(_augment(dsa, KEYS[1], small),
                            _augment(dsa, KEYS[2], small))


def test_mode_one_applies_one_of_the_listed_transforms():
  names = ('crop', 'scale', 'color')
  x = _images((2, 8, 8, 3))
  one = augment.DSA(names, mode='one')
  chosen = set()
  for key in KEYS:
    params = one.sample_params(key)
    y = _apply(one, params, x)
    singles = [_apply(augment.DSA((n,)), {n: params[n]}, x) for n in names]
    matches = [n for n, s in zip(names, singles)
               if np.allclose(y, s, rtol=1e-5, atol=1e-5)]
    assert len(matches) == 1
    chosen.add(matches[0])
  assert len(chosen) > 1


def test_bad_names_and_settings_are_errors():
  with pytest.raises(errors.ConfigError, match="unknown DSA transforms"):
    augment.DSA(('crop', 'blur'))
  with pytest.raises(errors.ConfigError, match="unknown DSA mode 'some'"):
    augment.DSA(('crop',), mode='some')
  with pytest.raises(errors.ConfigError,
                     match='DSA strength must be >= 0, not -1.0'):
    augment.DSA(('crop',), strength=-1.0)
  assert augment.from_spec('') is None
  assert augment.from_spec('crop, flip', 0.5).names == ('crop', 'flip')
  config = default.get_config()
  config.distill.dsa = 'crop,blur'
  with pytest.raises(errors.ConfigError, match=r'distill\.dsa'):
    config_checks.validate(config)


def test_distilled_images_get_the_transform_inside_the_meta_gradient():
  """mean_outer_loss's augment_images: the loss of the augmented images,
  and a gradient that flows back through the transform to the images."""
  model = models.make_model('mlp', 10, (8, 8, 1),
                            inits.kernel_initializer('xavier_normal'))
  apply_fn = models.Apply(model)
  params0 = inits.sample_params(model, KEYS[0], 2, (8, 8, 1))
  labels = distill.distilled_labels(2, 10, 1)
  d = distill.init_distilled(KEYS[1], labels, (8, 8, 1), 1, 0.1)
  real_x, real_y = _images((16, 8, 8, 1), seed=3), jnp.arange(16) % 10
  dsa = augment.DSA(('crop', 'scale', 'rotate'), mode='all')
  params = dsa.sample_params(KEYS[2])
  transform = functools.partial(dsa.apply, params)
  loss = lambda d, f: distill.mean_outer_loss(
      d, params0, real_x, real_y, apply_fn=apply_fn, labels_SxN=labels,
      augment_images=f)
  augmented = {**d, 'images': transform(
      d['images'].reshape(-1, 8, 8, 1)).reshape(d['images'].shape)}
  value, grads = jax.jit(jax.value_and_grad(lambda d: loss(d, transform)))(d)
  plain_value, plain_grads = jax.jit(jax.value_and_grad(
      lambda d: loss(d, None)))(augmented)
  np.testing.assert_allclose(value, plain_value, rtol=1e-6)
  # The chain rule: the gradient is the transform's VJP of the gradient at
  # the augmented images.
  _, vjp = jax.vjp(lambda x: transform(x.reshape(-1, 8, 8, 1)),
                   d['images'])
  expected, = vjp(plain_grads['images'].reshape(-1, 8, 8, 1))
  np.testing.assert_allclose(grads['images'], expected, rtol=1e-5,
                             atol=1e-7)
  assert not np.allclose(grads['images'], plain_grads['images'])


def test_a_run_config_with_dsa_augments_its_steps():
  """config.distill.dsa reaches the distillation step: at strength 1 the
  same iteration (same inits, same real batch) gives another loss than at
  strength 0, where DSA is the identity."""
  losses = []
  for strength in (0.0, 1.0):
    config = default.get_config()
    config.model.name = 'mlp'
    config.distill.steps = 1
    config.distill.epochs = 1
    config.real_batch_size = 32
    config.distill.dsa = 'crop,scale,rotate'
    config.distill.dsa_mode = 'all'
    config.distill.dsa_strength = strength
    config_checks.validate(config)
    program = train.build_program(config, 10, (8, 8, 1), num_examples=64)
    train_x = _images((64, 8, 8, 1), seed=4)
    train_y = jnp.arange(64) % 10
    state = train.initial_state(config, program, train_x, train_y)
    _, metrics = program.step_fn(state, program.sample_inits(KEYS[0]),
                                 train_x, train_y, KEYS[1])
    losses.append(float(metrics['loss']))
  assert np.all(np.isfinite(losses)) and losses[0] != losses[1], losses
