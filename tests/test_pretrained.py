"""Pretrained pools: digits in MNIST's format, pretraining, pretrained modes."""

import dataclasses
import os

import jax
import numpy as np
import pytest

from configs import mnist as mnist_config
from ddistill import config_checks
from ddistill.data import datasets
from ddistill import evaluate
from ddistill import inits
from ddistill import models
from ddistill import pretrained
from ddistill import train
from ddistill import errors


def _lenet():
  return models.make_model('lenet', 10, (28, 28, 1),
                           inits.kernel_initializer('xavier_normal'))


def test_other_digits_come_in_mnist_format(mnist):
  usps = datasets.load_dataset('usps', source='local')
  as_mnist = datasets.as_mnist_digits(usps)
  assert usps.train_images.shape[1:] == (16, 16, 1)
  assert as_mnist.train_images.shape[1:] == (28, 28, 1)
  np.testing.assert_allclose(as_mnist.mean, mnist.mean)
  unit = lambda d: d.train_images * d.std + d.mean
  # USPS digits go in a 20x20 box centred on black, as MNIST's: a 4-pixel
  # black border, and the same ink spread over (28/20)^2 as many pixels.
  framed = unit(as_mnist)
  assert np.abs(framed[:, :4]).max() < 1e-6
  assert np.abs(framed[:, :, -4:]).max() < 1e-6
  np.testing.assert_allclose(framed.mean() * (28 / 20)**2, unit(usps).mean(),
                             rtol=0.02)
  # The whole frame (box 28) keeps the mean brightness.
  whole = datasets.as_mnist_digits(usps, box=28)
  assert abs(unit(whole).mean() - unit(usps).mean()) < 0.01
  with pytest.raises(ValueError, match='digit box 29'):
    datasets.as_mnist_digits(usps, box=29)
  # RGB digits (SVHN) become one luminance channel.
  rgb = dataclasses.replace(
      usps, train_images=np.repeat(usps.train_images[:8], 3, -1),
      test_images=np.repeat(usps.test_images[:8], 3, -1),
      mean=np.repeat(usps.mean, 3), std=np.repeat(usps.std, 3))
  gray = datasets.as_mnist_digits(rgb)
  np.testing.assert_allclose(gray.train_images, as_mnist.train_images[:8],
                             atol=1e-4)


@pytest.fixture(scope='module')
def nets(mnist):
  """Five LeNets pretrained on 2,000 MNIST images, shared by the tests."""
  return pretrained.pretrain(_lenet(), jax.random.key(0),
                             mnist.train_images[:2000],
                             mnist.train_labels[:2000], 5, 2, 64, 2e-3, 1)


def test_pretraining_learns_and_pools_round_trip(mnist, nets, tmp_path):
  model = _lenet()
  w = jax.tree.leaves(nets)[0]
  assert w.shape[0] == 5 and not np.allclose(w[0], w[1])
  apply_fn = models.Apply(model)
  x, y = mnist.test_images[:1000], mnist.test_labels[:1000]
  for i in range(5):
    p = jax.tree.map(lambda a: a[i], nets)
    assert np.mean(np.argmax(apply_fn(p, x), -1) == y) > 0.8
  pool = {'train': jax.tree.map(lambda a: a[:2], nets),
          'heldout': jax.tree.map(lambda a: a[2:], nets)}
  path = str(tmp_path / 'pool')
  pretrained.save_pool(path, pool, {'note': 'test'})
  back = pretrained.load_pool(path, model, (28, 28, 1))
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(pool)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(FileExistsError, match='already holds a pool'):
    pretrained.save_pool(path, pool, {})
  mlp = models.make_model('mlp', 10, (28, 28, 1),
                          inits.kernel_initializer('xavier_normal'))
  with pytest.raises(ValueError, match='do not fit the model'):
    pretrained.load_pool(path, mlp, (28, 28, 1))
  with pytest.raises(FileNotFoundError, match='no pretrained pool'):
    pretrained.load_pool(str(tmp_path), model, (28, 28, 1))
  for folder, _, files in os.walk(os.path.join(path, 'params')):
    for name in files:  # Every file cut short: a damaged copy.
      with open(os.path.join(folder, name), 'r+b') as f:
        f.truncate(os.path.getsize(f.name) // 2)
  with pytest.raises(errors.DataError, match='the pool cannot be read'):
    pretrained.load_pool(path, model, (28, 28, 1))


def test_mnist_nets_read_usps_better_framed_like_mnist(nets):
  # Why USPS goes in a 20x20 box: MNIST nets, never shown USPS, read it
  # far better framed like their own digits than stretched to 28x28
  # (here 76% against 57%).
  usps = datasets.load_dataset('usps', source='local')
  apply_fn = models.Apply(_lenet())

  def accuracy(box):  # Mean over the 5 nets, as they are (0 GD steps).
    data = datasets.as_mnist_digits(usps, box=box)
    return evaluate.accuracy(apply_fn, nets, data.test_images,
                             data.test_labels).mean()

  assert accuracy(20) > accuracy(28) + 0.1


def test_distilling_from_a_pool_trains_on_train_nets_reports_heldout(
    nets, tmp_path):
  model = _lenet()
  pool = {'train': jax.tree.map(lambda a: a[:3], nets),
          'heldout': jax.tree.map(lambda a: a[3:], nets)}
  pool_dir = str(tmp_path / 'pool')
  pretrained.save_pool(pool_dir, pool, {})
  config = mnist_config.get_config('official_random')
  config.data.name = 'usps'  # Adapt MNIST nets to USPS.
  config.data.as_mnist = True
  config.distill.init_mode = 'random_pretrained'
  config.distill.num_inits = 2
  config.distill.pretrained_dir = pool_dir
  config.distill.steps, config.distill.epochs = 1, 1
  config.num_iterations, config.real_batch_size = 2, 64
  config.eval_every, config.eval.num_models = 0, 200
  results = train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert results['test_accuracy']['n_models'] == 2  # The held-out nets.
  heldout = train.heldout_inits(config, model, (28, 28, 1), 200)
  np.testing.assert_array_equal(jax.tree.leaves(heldout)[0],
                                jax.tree.leaves(pool['heldout'])[0])
  config.distill.init_mode = 'fixed_pretrained'
  fixed = train.heldout_inits(config, model, (28, 28, 1), 200)
  np.testing.assert_array_equal(jax.tree.leaves(fixed)[0],
                                jax.tree.leaves(pool['train'])[0][:1])
  config.distill.init_mode = 'random_pretrained'
  config.distill.num_inits = 4  # More than the 3 training nets.
  with pytest.raises(errors.ConfigError, match='exceeds the 3'):
    train.build_program(config, 10, (28, 28, 1))
  config.distill.num_inits = 2
  # Each draw is whole training nets: every layer from the same two nets.
  program = train.build_program(config, 10, (28, 28, 1))
  for step in range(3):
    drawn = jax.tree.map(np.asarray, program.sample_inits(
        jax.random.key(step)))
    first = jax.tree.leaves(drawn)[0]
    picks = [next(j for j in range(3) if np.array_equal(
        first[i], jax.tree.leaves(pool['train'])[0][j])) for i in range(2)]
    assert picks[0] != picks[1]
    for got, want in zip(jax.tree.leaves(drawn),
                         jax.tree.leaves(pool['train'])):
      np.testing.assert_array_equal(got, np.asarray(want)[picks])
  config.data.digit_box = 29
  with pytest.raises(errors.ConfigError, match='digit_box = 29'):
    config_checks.validate(config)
  config.data.digit_box = 0
  config.distill.pretrained_dir = ''
  with pytest.raises(errors.ConfigError, match='pretrained_dir'):
    config_checks.validate(config)


def test_pool_nets_draw_keys_apart_from_runs_of_the_same_seed(mnist,
                                                              monkeypatch,
                                                              tmp_path):
  """Pools are made beside runs and tables of the same seed (Table 2): in
  JAX split(key, n)[i] is fold_in(key, i), so chunk keys folded from the
  seed's root were the runs' streams."""
  from configs import pretrain as pretrain_config  # pylint: disable=g-import-not-at-top
  from ddistill.paper import pretraining  # pylint: disable=g-import-not-at-top
  config = pretrain_config.get_config('mnist')
  config.num_train, config.num_heldout, config.nets_per_chunk = 6, 6, 1
  chunk_keys = []

  class Enough(Exception):
    pass

  def record(model, key, *args, **kwargs):
    del model, args, kwargs
    chunk_keys.append(key)
    if len(chunk_keys) == 12:
      raise Enough
    return np.zeros(1)

  monkeypatch.setattr(pretrained, 'pretrain', record)
  monkeypatch.setattr(train, 'load_data', lambda _: mnist)
  with pytest.raises(Enough):
    pretraining.pool_from_training(config, str(tmp_path))
  as_tuple = lambda k: tuple(np.asarray(jax.random.key_data(k)).ravel())
  runs = train.run_keys(config.seed)
  taken = {as_tuple(k) for name, k in runs.items() if name != 'pool'}
  assert len({as_tuple(k) for k in chunk_keys}) == 12
  assert not taken & {as_tuple(k) for k in chunk_keys}


def test_killed_pretraining_resumes_at_its_chunk(mnist, monkeypatch,
                                                 tmp_path):
  """Each chunk of nets is saved as it is trained: a run killed during a
  chunk trains only the chunks not saved, a damaged saved chunk again, and
  the pool is the one an uninterrupted run makes."""
  from configs import pretrain as pretrain_config  # pylint: disable=g-import-not-at-top
  from ddistill.paper import pretraining  # pylint: disable=g-import-not-at-top
  config = pretrain_config.get_config('mnist')
  config.num_train, config.num_heldout, config.nets_per_chunk = 2, 2, 1
  config.epochs, config.batch_size = 1, 256
  small = dataclasses.replace(mnist, train_images=mnist.train_images[:1024],
                              train_labels=mnist.train_labels[:1024])
  monkeypatch.setattr(train, 'load_data', lambda _: small)
  real, trained = pretrained.pretrain, []

  class Killed(Exception):
    pass

  def counted(*args, kill_at=None, **kwargs):
    trained.append(args[1])
    if len(trained) == kill_at:
      raise Killed
    return real(*args, **kwargs)

  whole, killed = str(tmp_path / 'whole'), str(tmp_path / 'killed')
  pretraining.run_pretrain(config, whole)
  monkeypatch.setattr(pretrained, 'pretrain',
                      lambda *a, **k: counted(*a, kill_at=3, **k))
  with pytest.raises(Killed):
    pretraining.run_pretrain(config, killed)
  chunks = tmp_path / 'killed' / 'chunks'
  assert sorted(p.name for p in chunks.iterdir()) == ['0', '1']
  # Damage chunk 1: its largest file cut to half.
  largest = max((p for p in (chunks / '1').rglob('*') if p.is_file()),
                key=lambda p: p.stat().st_size)
  largest.write_bytes(largest.read_bytes()[:largest.stat().st_size // 2])
  trained.clear()
  monkeypatch.setattr(pretrained, 'pretrain', counted)
  pretraining.run_pretrain(config, killed)
  assert len(trained) == 3  # Chunks 1 (damaged), 2 and 3.
  assert not chunks.exists()
  model = _lenet()
  a = pretrained.load_pool(whole, model, (28, 28, 1))
  b = pretrained.load_pool(killed, model, (28, 28, 1))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
