"""The standard evaluation: SGD on the flattened set, a cross-arch table."""

import csv
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import mnist as mnist_config
from ddistill import augment
from ddistill import errors
from ddistill import export
from ddistill import inits
from ddistill import models
from ddistill import standard_eval
from ddistill import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XAVIER = inits.kernel_initializer('xavier_normal')


def _real_set(mnist, per_class=5, steps=2):
  """A 'distilled' set of real MNIST images: `steps` steps, each holding
  `per_class` images of every class."""
  picks = np.concatenate([np.flatnonzero(mnist.train_labels == c)[:per_class
                                                                 * steps]
                          for c in range(10)])
  order = picks.reshape(10, steps, per_class).transpose(1, 2, 0).reshape(
      steps, -1)
  return export.DistilledSet(
      mnist.train_images[order], mnist.train_labels[order].astype(np.int32),
      np.full(steps, 0.01, np.float32), mnist.mean, mnist.std, 1)


def test_sgd_matches_torch_style_momentum_and_weight_decay():
  """With one minibatch per epoch, training is plain full-batch SGD with
  torch's momentum and weight decay, the lr dropped halfway."""
  model = models.make_model('mlp', 3, (4, 4, 1), XAVIER)
  apply_fn = models.Apply(model)
  params0 = inits.init_params(model, jax.random.key(0), (4, 4, 1))
  x = jax.random.normal(jax.random.key(1), (6, 4, 4, 1))
  targets = jax.nn.softmax(jax.random.normal(jax.random.key(2), (6, 3)))
  recipe = standard_eval.Recipe(epochs=5, batch_size=8, lr=0.1, lr_decay=0.3,
                                momentum=0.9, weight_decay=0.01)
  got = jax.jit(lambda p: standard_eval.train_network(
      apply_fn, recipe, p, jax.random.key(3), x, targets))(params0)

  loss = lambda p: optax.softmax_cross_entropy(apply_fn(p, x), targets).mean()
  loss_grad = jax.jit(jax.grad(loss))
  params = params0
  for epoch in range(5):
    if epoch in (0, 2):  # A fresh optimizer at each lr, as the DC code.
      velocity = jax.tree.map(jnp.zeros_like, params)
    lr = 0.1 if epoch < 2 else 0.03
    grads = jax.tree.map(lambda g, p: g + 0.01 * p, loss_grad(params),
                         params)
    velocity = jax.tree.map(lambda v, g: 0.9 * v + g, velocity, grads)
    params = jax.tree.map(lambda p, v: p - lr * v, params, velocity)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  assert not np.allclose(jax.tree.leaves(got)[0],
                         jax.tree.leaves(params0)[0])


def test_networks_learn_the_soft_labels_they_are_given(mnist):
  d = _real_set(mnist)
  x, targets = standard_eval.flattened(d)
  assert x.shape == (100, 28, 28, 1) and targets.shape == (100, 10)
  np.testing.assert_array_equal(targets.argmax(-1), d.labels.reshape(-1))
  model = models.make_model('mlp', 10, (28, 28, 1), XAVIER)
  params0 = inits.sample_params(model, jax.random.key(0), 2, (28, 28, 1))
  recipe = standard_eval.Recipe(epochs=30, batch_size=32,
                                dsa=augment.DSA(('crop', 'scale')))
  test_x, test_y = mnist.test_images[:1000], mnist.test_labels[:1000]
  accs = standard_eval.train_and_test(models.Apply(model), recipe, params0,
                                      jax.random.key(1), x, targets, test_x,
                                      test_y)
  assert accs.shape == (2,) and np.all(accs > 0.5), accs
  # Targets naming the next class: the networks learn that mapping.
  shifted = np.roll(targets, 1, axis=-1)
  accs = standard_eval.train_and_test(models.Apply(model), recipe, params0,
                                      jax.random.key(1), x, shifted, test_x,
                                      (test_y + 1) % 10)
  assert np.all(accs > 0.5), accs


def test_command_writes_a_cross_architecture_table(tmp_path, mnist):
  path = str(tmp_path / 'distilled.npz')
  export.save_distilled(path, _real_set(mnist))
  out = str(tmp_path / 'standard')
  os.makedirs(out)  # A training run's workdir: the table may sit beside it.
  with open(os.path.join(out, 'config.json'), 'w') as f:
    f.write('{}')
  command = [sys.executable, '-m', 'experiments.evaluate', '--protocol',
             'standard', '--arch', 'mlp,alexcifarnet', '--config',
             'configs/mnist.py', '--distilled', path, '--num_models', '2',
             '--epochs', '20', '--batch_size', '50']
  result = subprocess.run(
      command + ['--workdir', out, '--output', str(tmp_path / 'rows.json')],
      cwd=REPO, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr
  with open(tmp_path / 'rows.json') as f:
    assert [row['arch'] for row in json.load(f)] == ['mlp', 'alexcifarnet']
  with open(os.path.join(out, 'standard_eval.csv')) as f:
    rows = list(csv.reader(f))
  assert rows[0] == ['architecture', 'test accuracy (%)', 'std (%)', 'models']
  assert rows[1][0] == 'mlp' and float(rows[1][1]) > 50 and rows[1][3] == '2'
  assert rows[2][:2] == ['alexcifarnet', 'n/a']
  with open(os.path.join(out, 'standard_eval.md')) as f:
    md = f.read()
  assert '| mlp |' in md and 'alexcifarnet: model' in md and '32' in md
  with open(os.path.join(out, 'standard_eval.json')) as f:
    saved = json.load(f)
  assert saved['recipe']['epochs'] == 20 and saved['recipe']['dsa'] is None
  assert saved['rows'][0]['test_accuracy']['n_models'] == 2

  # Another recipe into the same folder is refused before it trains; the
  # table stays.
  other = ['10' if a == '20' else a for a in command] + ['--workdir', out]
  result = subprocess.run(other, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 2
  assert 'holds outputs of a different config' in result.stderr
  with open(os.path.join(out, 'standard_eval.md')) as f:
    assert f.read() == md
  # An evaluation refused for its inputs claims no folder: fixed, it runs.
  unknown = [a.replace('mlp,', 'vgg,') for a in command]
  result = subprocess.run(unknown + ['--workdir', str(tmp_path / 'vgg')],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 2 and "unknown architectures ['vgg']" in (
      result.stderr)
  assert not (tmp_path / 'vgg').exists()

  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      'error: --protocol standard needs --workdir (where its table goes)')


def test_bad_architectures_and_recipes_are_errors(tmp_path, mnist):
  with pytest.raises(errors.ConfigError, match='epochs = 0 must be >= 1'):
    standard_eval.Recipe(epochs=0)
  config = mnist_config.get_config()
  with pytest.raises(errors.ConfigError, match="unknown architectures "
                     r"\['vgg'\]"):
    standard_eval.load(config, str(tmp_path / 'x.npz'), ['lenet', 'vgg'])


def test_a_set_evaluated_without_its_zca_whitening_is_an_error(tmp_path,
                                                               mnist):
  # Test images are whitened only when the config says so: a ZCA set scored
  # against raw test images would give a wrong figure without a word.
  d = _real_set(mnist)
  path = str(tmp_path / 'zca.npz')
  export.save_distilled(path, export.DistilledSet(
      d.images, d.labels, d.lrs, d.mean, d.std, d.epochs, zca=0.1))
  config = mnist_config.get_config()
  fix = r'data.zca = 0.1 but the config has 0; pass --config.data.zca=0.1'
  with pytest.raises(errors.DataError, match=fix):
    standard_eval.load(config, path, ['lenet'])
  with pytest.raises(errors.DataError, match=fix):
    train.evaluate_distilled_file(config, path, 2)
  # The same set without whitening passes the check (and trains).
  plain = str(tmp_path / 'plain.npz')
  export.save_distilled(plain, d)
  assert train.evaluate_distilled_file(config, plain, 1)[
      'test_accuracy']['n_models'] == 1
