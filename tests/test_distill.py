"""Small pieces of the engine: labels, starting images."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddistill import distill


def test_labels_hold_every_class_per_step():
  labels = np.asarray(distill.distilled_labels(3, 4, 2))
  assert labels.shape == (3, 8)
  for row in labels:
    np.testing.assert_array_equal(np.bincount(row), [2, 2, 2, 2])


def test_real_image_init_draws_each_slot_from_its_class():
  # Image i is filled with its own label, so a slot's value shows its class.
  real_y = jnp.asarray(np.random.default_rng(0).integers(0, 5, 300))
  real_x = jnp.broadcast_to(real_y[:, None, None, None].astype(jnp.float32),
                            (300, 4, 4, 1))
  labels = distill.distilled_labels(3, 5, 2)
  d = distill.init_distilled(jax.random.key(0), labels, (4, 4, 1), 2, 0.02,
                             'real', real_x, real_y)
  np.testing.assert_array_equal(d['images'][..., 0, 0, 0], labels)
  assert d['raw_lrs'].shape == (6,)
  # Different slots of one class get different images (not all the first).
  d2 = distill.init_distilled(jax.random.key(1), labels, (4, 4, 1), 2, 0.02,
                              'real', real_x + jnp.arange(300.0)[:, None,
                                                                  None, None],
                              real_y)
  picks = np.asarray(d2['images'][..., 0, 0, 0]) - np.asarray(labels)
  assert len(np.unique(picks)) > 10


def test_normal_init_is_standard_normal():
  labels = distill.distilled_labels(10, 10, 1)
  d = distill.init_distilled(jax.random.key(0), labels, (28, 28, 1), 3, 0.02)
  assert d['images'].shape == (10, 10, 28, 28, 1)
  assert abs(float(d['images'].mean())) < 0.01
  assert abs(float(d['images'].std()) - 1.0) < 0.01
  np.testing.assert_allclose(distill.lrs_from_raw(d['raw_lrs']), 0.02,
                             rtol=1e-5)


def test_unknown_image_init_is_an_error():
  with pytest.raises(ValueError, match='image_init'):
    distill.init_distilled(jax.random.key(0), distill.distilled_labels(1, 2, 1),
                           (4, 4, 1), 1, 0.02, 'zeros')
