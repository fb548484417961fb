"""Distillation learns, and a whole run writes, resumes and fails cleanly."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from configs import mnist as mnist_config
from ddistill import checkpoints
from ddistill import distill
from ddistill import evaluate
from ddistill import export
from ddistill import inits
from ddistill import metrics
from ddistill import models
from ddistill import train
from ddistill import errors
from ddistill.data import datasets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Accuracies on MNIST's 10,000 test images computed two ways agree to within
# float rounding, which can flip the few images whose top two logits tie.
TIE_FLIPS = 3e-4


def test_short_distillation_raises_heldout_accuracy(mnist):
  """Random-init distillation on a subset: held-out accuracy rises a lot."""
  model = models.make_model('lenet', 10, (28, 28, 1),
                            inits.kernel_initializer('xavier_normal'))
  apply_fn = models.Apply(model)
  keys = jax.random.split(jax.random.key(0), 4)
  train_x = jnp.asarray(mnist.train_images[:5000])
  train_y = jnp.asarray(mnist.train_labels[:5000])
  test_x, test_y = mnist.test_images[:2000], mnist.test_labels[:2000]
  labels = distill.distilled_labels(2, 10, 1)
  d = distill.init_distilled(keys[0], labels, (28, 28, 1), 2, 0.02)
  optimizer = distill.make_optimizer(0.05, 0.5, 1000, 0.5)
  state = {'distilled': d, 'opt_state': optimizer.init(d)}
  step = jax.jit(lambda s, p, k: distill.train_step(
      s, p, train_x, train_y, k, apply_fn=apply_fn, labels_SxN=labels,
      optimizer=optimizer, batch_size=256))
  heldout = inits.sample_params(model, keys[1], 8, (28, 28, 1))

  def accuracy():
    dd = state['distilled']
    return evaluate.evaluate_set(apply_fn, heldout, dd['images'], labels,
                                 distill.lrs_from_raw(dd['raw_lrs']), test_x,
                                 test_y).mean()

  before = accuracy()
  for it in range(50):
    params0 = inits.sample_params(model, jax.random.fold_in(keys[2], it), 2,
                                  (28, 28, 1))
    state, m = step(state, params0, jax.random.fold_in(keys[3], it))
  after = accuracy()
  assert before < 0.15
  assert after > before + 0.1, (before, after)


def _tiny_config(data_dir, **overrides):
  config = mnist_config.get_config('quick')
  config.data.data_dir = data_dir
  config.num_iterations = 6
  config.distill.steps = 2
  config.distill.epochs = 2
  config.real_batch_size = 128
  config.log_every = 2
  config.eval_every = 0
  config.checkpoint_every = 2
  config.eval.num_models = 3
  config.eval.num_models_during = 2
  config.update_from_flattened_dict(overrides)
  return config


def _direct_accuracies(config, path, test_x, test_y, num_models):
  """Held-out accuracies of a saved set, computed apart from ddistill's
  evaluation: the config's held-out inits of LeNet (XLA's convs), trained by
  a plain loop of GD steps on the saved images and lrs, then tested."""
  d = export.load_distilled(path)
  model = models.make_model('lenet', 10, d.images.shape[2:],
                            inits.kernel_initializer(config.model.init),
                            'xla')
  params0_M = train.heldout_inits(config, model, d.images.shape[2:],
                                  num_models)

  @jax.jit
  def gd_step(params, x, y, lr):
    loss = lambda p: -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(
        model.apply({'params': p}, x)), y[:, None], axis=1))
    return jax.tree.map(lambda p, g: p - lr * g, params, jax.grad(loss)(params))

  predict = jax.jit(lambda p, x: jnp.argmax(model.apply({'params': p}, x), -1))
  accs = []
  for i in range(len(jax.tree.leaves(params0_M)[0])):
    params = jax.tree.map(lambda a: a[i], params0_M)
    for t, lr in enumerate(d.lrs):  # Steps in order, every epoch.
      s = t % len(d.images)
      params = gd_step(params, d.images[s], d.labels[s], lr)
    accs.append(np.mean(np.asarray(predict(params, test_x)) == test_y))
  return np.asarray(accs)


@pytest.fixture
def data_dir(mnist):
  from ddistill.data import datasets
  return datasets.resolve_data_dir()


def test_run_writes_its_outputs_and_resumes(tmp_path, data_dir, mnist):
  config = _tiny_config(data_dir, **{'distill.init_mode': 'random'})
  workdir = str(tmp_path / 'run')
  results = train.train_and_evaluate(config, workdir)

  acc = results['test_accuracy']
  direct = _direct_accuracies(config, os.path.join(workdir, 'distilled.npz'),
                              mnist.test_images, mnist.test_labels, 3)
  assert acc['n_models'] == 3
  # Within float rounding, which may flip an image whose top two logits tie.
  assert acc['mean'] == pytest.approx(direct.mean(), abs=TIE_FLIPS)
  assert acc['std'] == pytest.approx(direct.std(), abs=TIE_FLIPS)
  with open(os.path.join(workdir, 'results.json')) as f:
    on_disk = json.load(f)
  assert on_disk['test_accuracy'] == acc
  assert on_disk['config']['distill']['init_mode'] == 'random'

  d = export.load_distilled(os.path.join(workdir, 'distilled.npz'))
  assert d.images.shape == (2, 10, 28, 28, 1)
  assert d.labels.shape == (2, 10) and d.lrs.shape == (4,)
  assert d.epochs == 2 and np.all(d.lrs > 0)
  np.testing.assert_allclose(d.mean, [0.1307])
  assert os.path.getsize(os.path.join(workdir, 'distilled.png')) > 1000

  lines = metrics.read(workdir)
  assert [l['step'] for l in lines] == [0, 2, 4, 6]
  assert all(np.isfinite(l['loss']) for l in lines[1:])
  assert len(lines[-1]['lrs']) == 4

  # The same command again resumes from the final checkpoint: no new
  # iterations, the same distilled set.
  again = train.train_and_evaluate(config, workdir)
  assert len(metrics.read(workdir)) == len(lines)
  d2 = export.load_distilled(os.path.join(workdir, 'distilled.npz'))
  np.testing.assert_array_equal(d.images, d2.images)
  assert again['test_accuracy'] == acc


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, data_dir,
                                                monkeypatch):
  config = _tiny_config(data_dir)
  full_dir, cut_dir = str(tmp_path / 'full'), str(tmp_path / 'cut')
  train.train_and_evaluate(config, full_dir)
  # Interrupt after the checkpoint at iteration 4 by failing at iteration 5.
  # The loss turns NaN outside the jitted step, which stays the same program.
  original = train.outer_iteration

  def failing_iteration(program, state, train_xy, keys, it, rep):
    new_state, m = original(program, state, train_xy, keys, it, rep)
    return new_state, {**m, 'loss': np.float32(np.nan) if it >= 5 else
                       m['loss']}

  with monkeypatch.context() as patch:
    patch.setattr(train, 'outer_iteration', failing_iteration)
    with pytest.raises(FloatingPointError, match=r'non-finite loss in '
                       r'iteration 6 .*checkpoint \(iteration 4\)'):
      train.train_and_evaluate(config, cut_dir)
  mngr = checkpoints.manager(cut_dir, 2)
  assert mngr.latest_step() == 4  # The last good one, intact.
  assert not os.path.exists(os.path.join(cut_dir, 'distilled.npz'))
  train.train_and_evaluate(config, cut_dir)
  a = export.load_distilled(os.path.join(full_dir, 'distilled.npz'))
  b = export.load_distilled(os.path.join(cut_dir, 'distilled.npz'))
  np.testing.assert_array_equal(a.images, b.images)
  np.testing.assert_array_equal(a.lrs, b.lrs)


def test_validation_split_keeps_the_best_set(tmp_path, data_dir, mnist):
  config = _tiny_config(data_dir, **{'data.val_size': 2000, 'eval_every': 2})
  workdir = str(tmp_path / 'run')
  results = train.train_and_evaluate(config, workdir)
  scored = [l for l in metrics.read(workdir) if 'val_accuracy' in l]
  assert [l['step'] for l in scored] == [0, 2, 4, 6]
  best = max(scored, key=lambda l: l['val_accuracy'])  # First of equals.
  assert results['selected']['step'] == best['step']
  assert results['selected']['val_accuracy'] == pytest.approx(
      best['val_accuracy'])
  # The saved set is the selected one: on the fixed init it scores what
  # that iteration's evaluation logged.
  direct = _direct_accuracies(config, os.path.join(workdir, 'distilled.npz'),
                              mnist.test_images, mnist.test_labels, 1)
  assert direct[0] == pytest.approx(best['test_accuracy'], abs=TIE_FLIPS)
  assert results['test_accuracy']['mean'] == pytest.approx(
      best['test_accuracy'], abs=TIE_FLIPS)


def test_a_run_extended_past_its_last_set_chooses_as_one_run(tmp_path,
                                                             data_dir):
  """A run that stops between evaluations scores its last set for its own
  outputs only: a run extended past it chooses as an uninterrupted one."""
  split = {'data.val_size': 2000, 'eval_every': 4}
  workdir = str(tmp_path / 'extended')
  first = train.train_and_evaluate(_tiny_config(data_dir, **split), workdir)
  scored = {l['step']: l['val_accuracy'] for l in metrics.read(workdir)
            if 'val_accuracy' in l}
  assert sorted(scored) == [0, 4, 6]
  assert first['selected']['step'] == 6  # What makes this test bite.
  mngr = checkpoints.manager(workdir, 2)
  saved = mngr.restore(mngr.latest_step(), args=ocp.args.StandardRestore())
  on_grid = {0: scored[0], 4: scored[4]}
  assert int(saved['best']['step']) == max(on_grid, key=on_grid.get)
  longer = _tiny_config(data_dir, num_iterations=8, **split)
  extended = train.train_and_evaluate(longer, workdir)
  fresh = train.train_and_evaluate(longer, str(tmp_path / 'fresh'))
  assert extended['selected'] == fresh['selected']
  np.testing.assert_array_equal(
      export.load_distilled(os.path.join(workdir, 'distilled.npz')).images,
      export.load_distilled(str(tmp_path / 'fresh' / 'distilled.npz')).images)


def test_moving_average_of_the_set_is_what_runs_evaluate_and_keep():
  """optim.ema_decay: the step keeps the debiased average of its sets, and
  evaluation, the kept best set and the outputs read that average."""
  model = models.make_model('mlp', 3, (4, 4, 1),
                            inits.kernel_initializer('xavier_normal'))
  keys = jax.random.split(jax.random.key(0), 5)
  train_x = jax.random.normal(keys[0], (64, 4, 4, 1))
  train_y = jax.random.randint(keys[1], (64,), 0, 3)
  labels = distill.distilled_labels(1, 3, 1)
  d = distill.init_distilled(keys[2], labels, (4, 4, 1), 2, 0.1)
  optimizer = distill.make_optimizer(0.1, 0.5, 100, 0.5)
  ema = optax.ema(0.8)
  state = {'distilled': d, 'opt_state': optimizer.init(d),
           'ema': d, 'ema_state': ema.init(d)}
  params0 = inits.sample_params(model, keys[3], 2, (4, 4, 1))
  step = jax.jit(lambda s, k: distill.train_step(
      s, params0, train_x, train_y, k, apply_fn=models.Apply(model),
      labels_SxN=labels, optimizer=optimizer, batch_size=16, ema=ema))
  sets = []
  for it in range(3):
    state, _ = step(state, jax.random.fold_in(keys[4], it))
    sets.append(state['distilled']['images'])
  weights = [0.2 * 0.8**2, 0.2 * 0.8, 0.2]
  by_hand = sum(w * x for w, x in zip(weights, sets)) / sum(weights)
  np.testing.assert_allclose(state['ema']['images'], by_hand, rtol=1e-5)
  assert not np.allclose(by_hand, sets[-1])
  assert train.reported_set(state) is state['ema']
  state['step'] = jnp.int32(3)
  state['best'] = {'distilled': d, 'step': jnp.int32(0),
                   'val_accuracy': jnp.float32(0.1)}
  kept = train._keep_best(state, {'val_accuracy': 0.5})
  assert kept['best']['distilled'] is state['ema']


def test_a_validation_split_is_held_out_before_zca_whitening(data_dir):
  config = _tiny_config(data_dir, **{'data.val_size': 30000,
                                     'data.zca': 0.1})
  data, (val_x, val_y) = train.load_split_data(config)
  assert len(data.train_images) == len(val_x) == len(val_y) == 30000
  # Fit on the kept half alone, its whitened mean is zero; a fit on all
  # 60,000 would leave the two halves' difference (about 0.01 here).
  kept_mean = data.train_images.reshape(30000, -1).mean(0, dtype=np.float64)
  assert np.abs(kept_mean).max() < 1e-4
  # The split goes through the kept images' map, as the test images do,
  # not through a fit of its own or of all 60,000.
  raw, (raw_val, _) = train.load_split_data(
      _tiny_config(data_dir, **{'data.val_size': 30000}))
  np.testing.assert_allclose(
      val_x, datasets.zca_transform(raw, 0.1)(raw_val), atol=1e-5)


def test_a_set_distilled_with_a_split_and_zca_is_tested_as_in_its_run(
    tmp_path, data_dir, monkeypatch):
  """The evaluators whiten test images as the run did: fit on the kept
  training images only."""
  config = _tiny_config(data_dir, **{'data.val_size': 30000,
                                     'data.zca': 0.1})
  labels = np.tile(np.arange(10, dtype=np.int32), (1, 1))
  path = str(tmp_path / 'distilled.npz')
  export.save_distilled(path, export.DistilledSet(
      np.zeros((1, 10, 28, 28, 1), np.float32), labels,
      np.full(1, 0.01, np.float32), np.zeros(1), np.ones(1), 1, zca=0.1))
  tested_on = {}

  def record(*args, **kwargs):
    tested_on['x'] = args[5]
    return np.zeros(1)

  monkeypatch.setattr(evaluate, 'evaluate_set', record)
  train.evaluate_distilled_file(config, path, 1)
  run_x = train.load_split_data(config)[0].test_images
  np.testing.assert_array_equal(tested_on['x'], run_x)
  # What a fit on every training image would give instead.
  assert np.abs(train.load_data(config).test_images - run_x).max() > 1e-3


def test_validation_split_that_does_not_fit_claims_no_workdir(tmp_path,
                                                             data_dir):
  config = _tiny_config(data_dir, **{'data.val_size': 60000})
  with pytest.raises(errors.DataError, match='validation split of 60000'):
    train.train_and_evaluate(config, str(tmp_path / 'never'))
  assert not os.path.exists(tmp_path / 'never')


def test_keep_best_replaces_the_set_only_on_a_better_validation_score():
  state = {'distilled': {'images': jnp.ones(2)}, 'step': jnp.int32(4),
           'best': {'distilled': {'images': jnp.zeros(2)},
                    'step': jnp.int32(2), 'val_accuracy': jnp.float32(0.5)}}
  for worse in (0.4, 0.5):
    assert train._keep_best(state, {'val_accuracy': worse}) is state
  # An equal score never replaces, though float32 rounds 0.9 down.
  tied = {**state, 'best': {**state['best'], 'val_accuracy': jnp.float32(0.9)}}
  assert train._keep_best(tied, {'val_accuracy': 0.9}) is tied
  kept = train._keep_best(state, {'val_accuracy': 0.6})
  np.testing.assert_array_equal(kept['best']['distilled']['images'], 1.0)
  assert int(kept['best']['step']) == 4
  assert float(kept['best']['val_accuracy']) == pytest.approx(0.6)
  # Without a validation split nothing is tracked.
  plain = {'distilled': state['distilled'], 'step': state['step']}
  assert train._keep_best(plain, {'test_accuracy': 0.9}) is plain


def test_workdir_with_another_config_is_not_mixed(tmp_path, data_dir):
  workdir = str(tmp_path / 'run')
  first = train.train_and_evaluate(_tiny_config(data_dir, num_iterations=2),
                                   workdir)
  # Other implementations of the same run (another backend's) resume it.
  how = {'model.conv_impl': 'xla', 'model.first_order_conv_impl': 'matmul',
         'distill.batching': 'map'}
  again = train.train_and_evaluate(
      _tiny_config(data_dir, num_iterations=2, **how), workdir)
  assert len(metrics.read(workdir)) == 2  # Iterations 0 and 2, not rerun.
  np.testing.assert_allclose(again['test_accuracy']['mean'],
                             first['test_accuracy']['mean'], atol=1e-6)
  # Another seed is another run, yet compiles the same programs.
  other = _tiny_config(data_dir, num_iterations=2, seed=1)
  with pytest.raises(errors.WorkdirConflict, match='--fresh'):
    train.train_and_evaluate(other, workdir)
  results = train.train_and_evaluate(other, workdir, fresh=True)
  assert results['config']['seed'] == 1


def test_command_line_run_and_evaluate(tmp_path, data_dir, mnist):
  workdir = str(tmp_path / 'cli')
  env = {**os.environ, 'DDISTILL_DATA_DIR': data_dir}
  run = subprocess.run(
      [sys.executable, '-m', 'experiments.mnist',
       '--config', 'configs/mnist.py:quick', '--workdir', workdir,
       '--config.num_iterations=2', '--config.distill.steps=1',
       '--config.distill.epochs=1', '--config.real_batch_size=64'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  assert 'test_accuracy' in run.stdout
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['distill']['steps'] == 1
  evaluation = subprocess.run(
      [sys.executable, '-m', 'experiments.evaluate',
       '--config', 'configs/mnist.py:quick', '--config.distill.steps=1',
       '--config.distill.epochs=1',
       '--distilled', os.path.join(workdir, 'distilled.npz'),
       '--output', str(tmp_path / 'eval.json')],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert evaluation.returncode == 0, evaluation.stderr[-3000:]
  with open(tmp_path / 'eval.json') as f:
    evaluated = json.load(f)
  with open(os.path.join(workdir, 'results.json')) as f:
    trained = json.load(f)
  # Both report the accuracy of the fixed init trained on the saved set.
  direct = _direct_accuracies(mnist_config.get_config('quick'),
                              os.path.join(workdir, 'distilled.npz'),
                              mnist.test_images, mnist.test_labels, 1)
  for results in (evaluated, trained):
    assert results['test_accuracy']['n_models'] == 1
    assert results['test_accuracy']['mean'] == pytest.approx(
        direct[0], abs=TIE_FLIPS)


def test_evaluations_fall_every_eval_every_even_between_log_lines():
  config = _tiny_config('', num_iterations=10, log_every=4, eval_every=3)
  schedule = [train.due(config, done) for done in range(1, 11)]
  logged = [done for done, (log, _) in enumerate(schedule, 1) if log]
  evaluated = [done for done, (_, ev) in enumerate(schedule, 1) if ev]
  assert evaluated == [3, 6, 9]
  assert logged == [3, 4, 6, 8, 9, 10]  # Each evaluation gets its line.
  config.eval_every = 0
  assert not any(ev for _, ev in (train.due(config, d) for d in range(1, 11)))
  # With a validation split the last set is always a candidate.
  config.data.val_size = 100
  assert [d for d in range(1, 11) if train.due(config, d)[1]] == [10]


def test_bad_config_fails_before_touching_the_workdir(tmp_path):
  config = _tiny_config('', **{'distill.steps': -1})
  with pytest.raises(ValueError, match='config.distill.steps = -1'):
    train.train_and_evaluate(config, str(tmp_path / 'never'))
  assert not os.path.exists(tmp_path / 'never')
