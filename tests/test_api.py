"""The public API (ddistill/api.py): distill_arrays, train_on."""

import json
import os

import jax
import numpy as np
import pytest

from configs import default
import ddistill
from ddistill import data
from ddistill import errors
from ddistill import inits
from ddistill import models
from ddistill import train
from ddistill.data.datasets import Dataset


def _blobs() -> Dataset:
  """4 classes of noisy 8x8 patterns: learnable, far from trivial at first."""
  rng = np.random.default_rng(0)
  patterns = rng.normal(size=(4, 8, 8, 1))
  y = rng.integers(0, 4, size=1500).astype(np.int32)
  x = (patterns[y] + 1.5 * rng.normal(size=(1500, 8, 8, 1))).astype(np.float32)
  return Dataset('blobs', x[:1000], y[:1000], x[1000:], y[1000:],
                 np.zeros(1, np.float32), np.ones(1, np.float32), 4)


def _config():
  config = default.get_config('quick')  # One fixed init, images from N(0, 1).
  config.model.name = 'mlp'
  config.distill.steps = 2
  config.optim.lr = 0.05
  config.num_iterations = 30
  config.real_batch_size = 128
  config.log_every = 10
  config.checkpoint_every = 30
  return config


def test_distill_arrays_learns_the_set_a_run_learns(tmp_path, monkeypatch):
  """Given a dataset's arrays, distill_arrays learns the very set
  train_and_evaluate writes, and that set trains its init well beyond what
  the starting set does."""
  monkeypatch.setattr(data, 'SOURCES', dict(data.SOURCES))
  blobs = _blobs()
  data.register('test_blobs', data.Source(
      load=lambda dc: blobs, image_size=lambda dc: (8, 8), local=True))
  config = _config()
  config.data.name = 'test_blobs'
  results = train.train_and_evaluate(config, str(tmp_path))
  saved = ddistill.load_distilled(os.path.join(tmp_path, 'distilled.npz'))

  d = ddistill.distill_arrays(blobs.train_images, blobs.train_labels, 4,
                              config)
  np.testing.assert_array_equal(d.images, saved.images)
  np.testing.assert_array_equal(d.lrs, saved.lrs)
  np.testing.assert_array_equal(d.labels, saved.labels)

  with open(os.path.join(tmp_path, 'metrics.jsonl')) as f:
    start = json.loads(f.readline())
  assert start['step'] == 0
  assert start['test_accuracy'] < 0.5
  assert results['test_accuracy']['mean'] > start['test_accuracy'] + 0.25


def test_train_on_takes_a_module_or_an_apply_fn():
  rng = np.random.default_rng(0)
  d = ddistill.DistilledSet(
      images=rng.normal(size=(2, 3, 8, 8, 1)).astype(np.float32),
      labels=np.tile(np.arange(3, dtype=np.int32), (2, 1)),
      lrs=np.array([0.1, 0.2, 0.05, 0.3], np.float32),
      mean=np.zeros(1), std=np.ones(1), epochs=2)
  model = models.make_model('mlp', 3, (8, 8, 1),
                            inits.kernel_initializer('xavier_normal'))
  params0 = model.init(jax.random.key(0), d.images[0])['params']
  by_module = ddistill.train_on(model, params0, d)
  by_fn = ddistill.train_on(lambda p, x: model.apply({'params': p}, x),
                            params0, d)
  for a, b, a0 in zip(jax.tree.leaves(by_module), jax.tree.leaves(by_fn),
                      jax.tree.leaves(params0)):
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, a0)


def test_train_on_names_a_model_or_params_that_do_not_fit_the_set():
  rng = np.random.default_rng(0)
  d = ddistill.DistilledSet(
      images=rng.normal(size=(1, 3, 8, 8, 1)).astype(np.float32),
      labels=np.arange(3, dtype=np.int32)[None], lrs=np.full(1, 0.1),
      mean=np.zeros(1), std=np.ones(1), epochs=1)
  init = inits.kernel_initializer('xavier_normal')
  mlp = models.make_model('mlp', 3, (8, 8, 1), init)
  params = mlp.init(jax.random.key(0), d.images[0])['params']
  lenet = models.make_model('lenet', 3, (28, 28, 1), init)
  with pytest.raises(errors.ConfigError, match=r'the model on params and '
                     r'one step.s images \(3, 8, 8, 1\) failed'):
    ddistill.train_on(lenet, params, d)  # Another model's params.
  two = models.make_model('mlp', 2, (8, 8, 1), init)
  with pytest.raises(errors.ConfigError, match='gives 2 logits per image; '
                     'the set has 3 classes'):
    ddistill.train_on(two, two.init(jax.random.key(0), d.images[0])[
        'params'], d)
  with pytest.raises(errors.DataError, match='must be a DistilledSet'):
    ddistill.train_on(mlp, params, {'images': d.images})


@pytest.mark.parametrize('x, y, num_classes, kw, error, message', [
    (np.full((12, 8, 8, 1), np.nan), np.arange(12) % 4, 4, {},
     errors.DataError, 'x holds NaN'),
    (np.zeros((0, 8, 8, 1)), np.zeros(0, int), 4, {}, errors.DataError,
     r'N >= 1, not of shape \(0, 8, 8, 1\)'),
    (np.zeros((12, 8, 8, 1)), np.arange(12) % 4, 4.0, {}, errors.ConfigError,
     'num_classes = 4.0 must be an integer >= 2'),
    (np.zeros((12, 8, 8, 1)), np.zeros(12, int), 1, {}, errors.ConfigError,
     'num_classes = 1 must be'),
    (np.zeros((12, 8, 8, 1)), np.arange(12) % 4, 4, {'mean': np.zeros(3)},
     errors.DataError, r'mean \(3,\) and std \(1,\) do not fit 1-channel'),
    (np.zeros((12, 8, 8, 1)), np.arange(12) % 4, 4, {'std': np.zeros(1)},
     errors.DataError, 'std <= 0'),
])
def test_distill_arrays_names_bad_arguments_before_distilling(
    x, y, num_classes, kw, error, message):
  with pytest.raises(error, match=message):
    ddistill.distill_arrays(x, y, num_classes, _config(), **kw)
  with pytest.raises(errors.ConfigError, match='must be an ml_collections'):
    ddistill.distill_arrays(x, y, num_classes, None)


@pytest.mark.parametrize('x_shape, y, message', [
    ((12, 8, 8), np.arange(12) % 4, 'x must be images'),
    ((12, 8, 8, 1), np.arange(11) % 4, 'y must be labels'),
    ((12, 8, 8, 1), (np.arange(12) % 4).astype(float), 'integer class'),
    ((12, 8, 8, 1), np.arange(12) % 3, r'missing \[3\]'),
    ((12, 8, 8, 1), np.arange(12) % 5, r'range \[0, 4\]'),
])
def test_distill_arrays_names_bad_arrays(x_shape, y, message):
  with pytest.raises(errors.DataError, match=message):
    ddistill.distill_arrays(np.zeros(x_shape, np.float32), y, 4, _config())


@pytest.mark.parametrize('field', ['data.val_size', 'data.zca'])
def test_distill_arrays_refuses_what_it_cannot_do_to_arrays(field):
  config = _config()
  config.update_from_flattened_dict({field: 1000 if 'val' in field else 0.1})
  with pytest.raises(errors.ConfigError, match='arrays as given'):
    ddistill.distill_arrays(np.zeros((12, 8, 8, 1), np.float32),
                            np.arange(12) % 4, 4, config)


def test_distill_arrays_checks_the_model_against_the_arrays_images():
  """Not against config.data.name's (MNIST's 28x28 here)."""
  config = _config()
  config.model.name, config.num_iterations = 'alexcifarnet', 0
  y = np.arange(12) % 4
  d = ddistill.distill_arrays(np.zeros((12, 32, 32, 3), np.float32), y, 4,
                              config)
  assert d.images.shape[2:] == (32, 32, 3)
  config.model.name = 'lenet'
  with pytest.raises(errors.ConfigError,
                     match=r"'lenet' takes images of size .* but x \(the "
                     r'arrays\) has 16x16'):
    ddistill.distill_arrays(np.zeros((12, 16, 16, 1), np.float32), y, 4,
                            config)
