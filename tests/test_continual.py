"""Continual learning: streams, GEM's projection, and the learners."""

import json
import os

import jax
import numpy as np
import pytest

from configs import continual as continual_config
from ddistill.continual import learners
from ddistill.continual import runner
from ddistill.continual import gem
from ddistill.continual import icarl
from ddistill import inits
from ddistill import models
from ddistill.continual import streams
from ddistill import errors


def test_projection_keeps_agreeing_gradients_and_fixes_conflicts():
  rng = np.random.default_rng(0)
  g = rng.standard_normal(6)
  agree = np.stack([g + 0.1 * rng.standard_normal(6), g])
  np.testing.assert_array_equal(gem.project(g, agree), g)
  a = -g + 0.3 * rng.standard_normal(6)  # Conflicts: a . g < 0.
  assert a @ g < 0
  out = gem.project(g, a[None], eps=1e-9)
  # One constraint: the closest vector with a . g~ = 0 is g minus its part
  # along a.
  np.testing.assert_allclose(out, g - (a @ g) / (a @ a) * a, atol=1e-6)
  many = rng.standard_normal((4, 6))
  out = gem.project(g, many, eps=1e-9)
  assert np.all(many @ out >= -1e-6)
  # The margin γ pushes the update further towards the memories.
  pushed = gem.project(g, many, margin=0.5, eps=1e-9)
  assert (many @ pushed).sum() > (many @ out).sum()


def test_permuted_stream_permutes_pixels_and_draws_its_own_images(mnist):
  stream = streams.permuted(mnist, jax.random.key(0), 3, 50)
  t0, t1 = stream.task(0), stream.task(1)
  assert t0.train_x.shape == (50, 28, 28, 1) and len(t0.test_x) == 10000
  flat = mnist.test_images.reshape(10000, -1)
  np.testing.assert_array_equal(t1.test_x.reshape(10000, -1),
                                flat[:, stream.perms[1]])
  assert not np.array_equal(stream.perms[0], stream.perms[1])
  assert sorted(stream.perms[2]) == list(range(784))
  with pytest.raises(ValueError, match='train_per_task'):
    streams.permuted(mnist, jax.random.key(0), 2, 10**6)
  unit = streams.unit_pixels(mnist)
  assert unit.train_images.min() >= -1e-6 and unit.train_images.max() <= 1.0


def test_split_stream_takes_consecutive_classes(mnist):
  stream = streams.split(mnist, 5)
  assert len(stream) == 2 and stream.task(1).classes == (5, 6, 7, 8, 9)
  assert set(np.unique(stream.task(1).train_y)) == {5, 6, 7, 8, 9}
  with pytest.raises(ValueError, match='divide'):
    streams.split(mnist, 3)


def _learner(method, **kw):
  c = continual_config.get_config('gem').learner
  c.method = method
  c.update(kw)
  return c


def test_memory_and_penalty_reduce_forgetting(mnist):
  data = streams.unit_pixels(mnist)
  stream = streams.permuted(data, jax.random.key(0), 3, 600)
  model = models.make_model('mlp', 10, (28, 28, 1),
                            inits.kernel_initializer('xavier_normal'))
  run = lambda c: learners.run_stream(c, stream, model, jax.random.key(1))
  sgd = run(_learner('sgd'))
  assert sgd.shape == (3, 3) and sgd[0, 0] > 0.6  # It learns the first task.
  gem_R = run(_learner('gem', memory_per_task=50))
  ewc_R = run(_learner('ewc', ewc_lambda=10.0, ewc_samples=300))
  forgetting = lambda R: (R[0, 0] - R[-1, 0])
  assert forgetting(gem_R) < forgetting(sgd) - 0.02
  assert forgetting(ewc_R) < forgetting(sgd) - 0.02


def test_distilled_memory_has_one_image_per_class_and_learns(mnist):
  data = streams.unit_pixels(mnist)
  task = streams.permuted(data, jax.random.key(0), 1, 500).task(0)
  model = models.make_model('mlp', 10, (28, 28, 1),
                            inits.kernel_initializer('xavier_normal'))
  dc = continual_config.get_config('gem_distilled').learner.distill
  dc.gd_steps, dc.iterations, dc.batch_size = 10, 30, 500
  x, y, losses = learners.distilled_memory(task, jax.random.key(0), model, dc,
                                           10)
  assert x.shape == (10, 28, 28, 1) and list(y) == list(range(10))
  assert np.all(np.isfinite(x))
  # The outer loss on the task's data falls by more than its noise between
  # iterations (fresh inits each one, so compare the first and last few).
  assert losses[-5:].mean() < losses[:5].mean() - 2 * losses[:5].std() - 0.02
  # They start as real images of the task and are optimized away from them.
  flat = task.train_x.reshape(len(task.train_x), -1)
  gaps = [np.abs(flat - im.ravel()).max(axis=1).min() for im in x]
  assert min(gaps) > 1e-3


def test_a_split_tasks_memory_is_distilled_on_its_own_classes(mnist):
  """GEM replays a memory through the task's head (logits masked to its
  classes); the memory is distilled through the same head."""
  data = streams.unit_pixels(mnist)
  task = streams.split(data, 5).task(0)
  model = models.make_model('mlp', 10, (28, 28, 1),
                            inits.kernel_initializer('xavier_normal'))
  dc = continual_config.get_config('gem_distilled').learner.distill
  dc.gd_steps, dc.iterations, dc.batch_size, dc.lr_init = 1, 3, 500, 1e-6
  x, y, losses = learners.distilled_memory(task, jax.random.key(0), model, dc,
                                           10)
  assert sorted(set(y.tolist())) == [0, 1, 2, 3, 4]
  # Barely trained, the loss is cross-entropy at init over the 5 classes
  # (about log 5 = 1.61), not over all 10 (about log 10 = 2.30).
  assert np.all(np.abs(losses - np.log(5)) < 0.3), losses


def test_herding_tracks_the_class_mean():
  rng = np.random.default_rng(0)
  f = rng.standard_normal((200, 5)) + 3.0
  picks = icarl.herding(f, 20)
  assert len(set(picks.tolist())) == 20
  mean = f.mean(0)
  assert picks[0] == np.argmin(np.linalg.norm(f - mean, axis=1))
  herded = np.linalg.norm(f[picks].mean(0) - mean)
  random = [np.linalg.norm(f[rng.choice(200, 20, replace=False)].mean(0) -
                           mean) for _ in range(50)]
  assert herded < 0.25 * np.median(random)
  with pytest.raises(ValueError, match='exemplars'):
    icarl.herding(f, 201)


def test_icarl_distillation_reduces_forgetting(mnist):
  import dataclasses
  data = streams.unit_pixels(mnist)
  data = dataclasses.replace(data, train_images=data.train_images[:3000],
                             train_labels=data.train_labels[:3000])
  stream = streams.split(data, 2)  # 5 tasks of 2 digits.
  model = models.make_model('mlp', 10, (28, 28, 1),
                            inits.kernel_initializer('xavier_normal'))
  run = lambda reg: icarl.run_stream(
      _learner('icarl', icarl_reg=reg, memory_per_task=50), stream, model,
      jax.random.key(1))
  plain, distilled = run(0.0), run(1.0)
  # Nearest mean of exemplars learns every task...
  assert np.all(np.diag(distilled) > 0.9)
  # ...and keeping the stored exemplars' outputs forgets the first task less.
  forgetting = lambda R: R[0, 0] - R[-1, 0]
  assert forgetting(distilled) < forgetting(plain) - 0.015
  with pytest.raises(ValueError, match='class-incremental'):
    icarl.run_stream(_learner('icarl'), streams.permuted(
        data, jax.random.key(0), 2, 10), model, jax.random.key(1))
  with pytest.raises(ValueError, match='memory_per_task'):
    icarl.run_stream(_learner('icarl', memory_per_task=1), stream, model,
                     jax.random.key(1))


def _learnable_cifar100(builder, split, **kwargs):
  """tfds's CIFAR-100 source under mock_data, made learnable: its first 10
  classes as waves of 5 orientations and 2 periods, at random phases, under
  pixel noise (200 train, 20 test images each)."""
  del builder, kwargs
  labels = np.repeat(np.arange(10), 200 if split == 'train' else 20)
  rng = np.random.default_rng(split == 'train')
  angle = (np.pi / 5 * (labels % 5))[:, None, None]
  period = np.where(labels < 5, 4.0, 8.0)[:, None, None]
  phase = rng.uniform(0, 2 * np.pi, (len(labels), 1, 1))
  yy, xx = np.mgrid[:32, :32]
  wave = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) /
                period + phase)
  images = 128 + 80 * wave[..., None] + rng.normal(0, 30, (*wave.shape, 3))
  images = np.clip(images, 0, 255).astype(np.uint8)
  return [{'image': x, 'label': y} for x, y in zip(images, labels)]


@pytest.mark.parametrize('variant', ['cifar100_gem', 'cifar100_icarl'])
def test_split_cifar100_with_resnet_gn_runs_under_mock_data(tmp_path,
                                                          monkeypatch,
                                                          variant):
  import functools
  import tensorflow_datasets as tfds
  from ddistill.models import resnet
  # A narrow, shallow ResNet keeps the test fast; the wiring is the same.
  monkeypatch.setitem(models.MODELS, 'resnet18_gn', models.ModelSpec(functools.partial(
      resnet.ResNet18GN, width=4, blocks=(1, 1))))
  config = continual_config.get_config(variant)
  config.seeds, config.num_tasks = '0', 2
  config.gem_margins, config.icarl_regs = '0', '0.1'
  config.learner.memory_per_task = 10
  with tfds.testing.mock_data(as_data_source_fn=_learnable_cifar100):
    results = runner.run_continual(config, str(tmp_path),
                                          log=lambda _: None)
  R = np.asarray(results['accuracy_matrices'][0])
  assert R.shape == (2, 2)
  # Each task is learned: far above chance (1 in 5 classes, or 10 for
  # iCaRL's class-incremental second task).
  assert np.all(np.diag(R) > 0.6), R
  assert results['final_accuracy']['n_seeds'] == 1
  assert results['final_accuracy']['mean'] == pytest.approx(R[-1].mean())


def test_workdir_of_another_setup_is_refused_unless_fresh(tmp_path):
  config = continual_config.get_config('gem_distilled')
  workdir = str(tmp_path)
  runner.check_workdir(config, workdir)
  with open(tmp_path / 'runs.json', 'w') as f:
    f.write('{}')
  os.makedirs(tmp_path / 'memories')
  config.seeds, config.gem_margins = '0,1,2,3', '0.5'  # More runs: allowed.
  runner.check_workdir(config, workdir)
  config.learner.distill.real_chunk = 128  # How, not what: allowed...
  runner.check_workdir(config, workdir)
  with open(tmp_path / 'setup.json') as f:
    saved = json.load(f)
  del saved['learner']['distill']['real_chunk']  # ...as is its absence.
  with open(tmp_path / 'setup.json', 'w') as f:
    json.dump(saved, f)
  runner.check_workdir(config, workdir)
  config.learner.distill.gd_steps = 50  # Cached memories would be stale.
  with pytest.raises(errors.WorkdirConflict, match='--fresh'):
    runner.run_continual(config, workdir)
  assert os.path.exists(tmp_path / 'runs.json')  # Nothing lost.
  runner.check_workdir(config, workdir, fresh=True)
  assert not os.path.exists(tmp_path / 'runs.json')
  assert not os.path.exists(tmp_path / 'memories')
  runner.check_workdir(config, workdir)  # Now this setup's workdir.


def test_bad_continual_settings_are_errors():
  config = continual_config.get_config('gem')
  config.learner.method = 'lwf'
  with pytest.raises(ValueError,
                     match="unknown config.learner.method 'lwf'"):
    runner.grid(config)
  config.learner.method = 'gem'
  config.gem_margins = '0,a'
  with pytest.raises(ValueError, match='gem_margins'):
    runner.grid(config)
  with pytest.raises(ValueError, match='unknown config variant'):
    continual_config.get_config('icarl')


def test_table4_reports_runs_and_how_memories_were_distilled(tmp_path):
  import json
  from ddistill.paper import tables
  for variant, acc in (('gem', [0.6, 0.62]), ('gem_distilled', [0.7, 0.74]),
                       ('cifar100_icarl', [0.4, 0.44])):
    config = continual_config.get_config(variant)
    config.learner.distill.gd_steps = 50
    os.makedirs(tmp_path / variant)
    with open(tmp_path / variant / 'results.json', 'w') as f:
      json.dump({'final_accuracy': {'mean': float(np.mean(acc)),
                                    'std': float(np.std(acc)), 'n_seeds': 2},
                 'best_setting': ({'icarl_reg': 0.1} if 'icarl' in variant
                                  else {'gem_margin': 0.5}),
                 'config': json.loads(config.to_json())}, f)
  rows = {tuple(line.split(' | ')[:2]): line for line in
          tables.table4_from_runs(str(tmp_path))[0].splitlines()[2:]}
  assert '| 61.0 ± 1.0 (2 seeds; gem_margin 0.5) | 67.4 |' in rows[
      ('| 10', 'GEM')]
  assert ('72.0 ± 2.0 (2 seeds; gem_margin 0.5; distilled with 50 GD steps, '
          '300 iterations) | 75.6' in rows[('| 10', 'GEM + ours (distilled '
                                            'memory)')])
  assert '| not run | 75.3 |' in rows[('| 40', 'GEM')]
  assert '| not run | 63.5 |' in rows[('| 0', 'EWC (no memory)')]
  assert ('| — (class-incremental only) | — | 42.0 ± 2.0 (2 seeds; icarl_reg '
          '0.1) | 42.4 |') in rows[('| 10', 'iCaRL')]
  assert '| not run (no CIFAR-100 offline) | 45.8 |' in rows[('| 40',
                                                             'iCaRL')]
  # Another experiment's results in a variant's folder are named, and so is
  # a --runs folder that is not there.
  with open(tmp_path / 'gem' / 'results.json', 'w') as f:
    json.dump({'test_accuracy': {'mean': 0.9}}, f)
  with pytest.raises(errors.DataError, match='gem/results.json: not the '
                     'results of an experiments.continual run'):
    tables.table4_from_runs(str(tmp_path))
  with pytest.raises(errors.DataError, match='no/such: folder not found'):
    tables.table4_from_runs(str(tmp_path / 'no' / 'such'))
