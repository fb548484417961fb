"""Real-image baselines, the lr x steps protocol, and Table 1's bookkeeping."""

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from configs import table1 as table1_config
from ddistill.paper import baselines
from ddistill import evaluate
from ddistill import inits
from ddistill import models
from ddistill.paper import protocol
from ddistill.paper import table1
from ddistill.paper import tables


def _toy(n_per_class=30, num_classes=3, shape=(4, 4, 1), seed=0):
  """Well-separated classes: class c is noise around the constant image c."""
  rng = np.random.default_rng(seed)
  y = np.repeat(np.arange(num_classes, dtype=np.int32), n_per_class)
  x = (y[:, None, None, None] * 5.0 +
       0.1 * rng.standard_normal((len(y), *shape))).astype(np.float32)
  return x, y


def test_random_real_draws_distinct_images_of_each_class_class_fastest():
  x, y = _toy()
  x = x + np.arange(len(x))[:, None, None, None] * 1e-3  # Every image unique.
  images, labels = baselines.random_real(jax.random.key(0), x, y, 3, 4)
  assert images.shape == (12, 4, 4, 1)
  np.testing.assert_array_equal(labels, np.tile([0, 1, 2], 4))
  idx = [int(np.flatnonzero((x == im).all(axis=(1, 2, 3)))[0])
         for im in images]
  assert len(set(idx)) == 12  # Without replacement.
  np.testing.assert_array_equal(y[idx], labels)
  other, _ = baselines.random_real(jax.random.key(1), x, y, 3, 4)
  assert not np.array_equal(images, other)
  with pytest.raises(ValueError, match='class 0 has 30'):
    baselines.random_real(jax.random.key(0), x, y, 3, 31)


def test_kmeans_finds_the_clusters_within_each_class():
  # Class c holds two tight blobs at -1 and +1 (plus c): the two centres must
  # land on them.
  rng = np.random.default_rng(0)
  blobs = np.repeat([-1.0, 1.0], 20)
  x = np.concatenate([c + blobs[:, None] + 0.01 * rng.standard_normal(
      (40, 4)) for c in (0, 10)]).reshape(80, 2, 2, 1).astype(np.float32)
  y = np.repeat([0, 1], 40).astype(np.int32)
  centres, labels = baselines.kmeans_centres(0, x, y, 2, 2)
  np.testing.assert_array_equal(labels, [0, 1, 0, 1])
  means = sorted(centres.reshape(4, -1).mean(1).round(1))
  np.testing.assert_allclose(means, [-1, 1, 9, 11], atol=0.05)


def test_average_real_is_the_class_mean():
  x, y = _toy()
  images, labels = baselines.average_real(x, y, 3)
  np.testing.assert_array_equal(labels, [0, 1, 2])
  np.testing.assert_allclose(images[1], x[y == 1].mean(0), rtol=1e-6)


def test_knn_matches_brute_force_and_metrics_differ():
  rng = np.random.default_rng(0)
  ref_x = rng.standard_normal((20, 3, 3, 1)).astype(np.float32)
  ref_y = rng.integers(0, 4, 20).astype(np.int32)
  test_x = rng.standard_normal((50, 3, 3, 1)).astype(np.float32)
  test_y = rng.integers(0, 4, 50).astype(np.int32)
  for metric, ord_ in (('l1', 1), ('l2', 2)):
    d = np.linalg.norm(test_x.reshape(50, 1, -1) - ref_x.reshape(1, 20, -1),
                       ord=ord_, axis=-1)
    expected = np.mean(ref_y[d.argmin(1)] == test_y)
    assert baselines.knn_accuracy(ref_x, ref_y, test_x, test_y, 1, metric,
                                  chunk=7) == pytest.approx(expected)
  # A point nearer (in l1) to one reference and (in l2) to the other.
  ref = np.array([[3.0, 0.0], [1.9, 1.9]], np.float32).reshape(2, 2, 1, 1)
  q = np.zeros((1, 2, 1, 1), np.float32)
  lab = np.array([0, 1], np.int32)
  assert baselines.knn_accuracy(ref, lab, q, np.array([0]), 1, 'l1') == 1.0
  assert baselines.knn_accuracy(ref, lab, q, np.array([0]), 1, 'l2') == 0.0
  with pytest.raises(ValueError, match="unknown metric 'cosine'"):
    baselines.knn_accuracy(ref, lab, q, lab[:1], 1, 'cosine')
  with pytest.raises(ValueError, match='k = 3'):
    baselines.knn_accuracy(ref, lab, q, lab[:1], 3, 'l1')


def _mnist_problem(mnist, num_models=2):
  model = models.make_model('lenet', 10, (28, 28, 1),
                            inits.kernel_initializer('xavier_normal'))
  params0_M = inits.sample_params(model, jax.random.key(0), num_models,
                                  (28, 28, 1))
  return models.Apply(model), params0_M


def test_step_grid_equals_separate_runs_and_learning_happens(mnist):
  apply_fn, params0_M = _mnist_problem(mnist)
  x, y = baselines.random_real(jax.random.key(0), mnist.train_images,
                               mnist.train_labels, 10, 5)
  test_x, test_y = mnist.test_images[:1000], mnist.test_labels[:1000]
  grid = evaluate.evaluate_fixed_lr(apply_fn, params0_M, x, y, 0.05,
                                    [0, 3, 40], test_x, test_y)
  assert grid.shape == (3, 2)
  alone = evaluate.evaluate_fixed_lr(apply_fn, params0_M, x, y, 0.05, [40],
                                     test_x, test_y)
  np.testing.assert_allclose(grid[2], alone[0], atol=2e-3)
  # The same training through the distilled-set path, 40 equal lrs.
  as_distilled = evaluate.evaluate_set(apply_fn, params0_M, x[None], y[None],
                                       np.full(40, 0.05, np.float32), test_x,
                                       test_y)
  np.testing.assert_allclose(grid[2], as_distilled, atol=2e-3)
  # Models vmapped in chunks (the GPU/TPU path) give the same accuracies, up
  # to float rounding. (At lr 0.1, 40 steps are chaotic enough to grow
  # rounding into a 10-point gap.)
  chunked = evaluate.evaluate_set(apply_fn, params0_M, x[None], y[None],
                                  np.full(40, 0.05, np.float32), test_x,
                                  test_y, per_batch=2)
  np.testing.assert_allclose(chunked, as_distilled, atol=1e-2)
  assert grid[0].mean() < 0.2 and grid[2].mean() > 0.6
  with pytest.raises(ValueError, match='ascending'):
    evaluate.evaluate_fixed_lr(apply_fn, params0_M, x, y, 0.05, [5, 1],
                               test_x, test_y)


def test_selection_prefers_correctly_labelled_sets(mnist):
  apply_fn, params0_M = _mnist_problem(mnist)
  good = [baselines.random_real(k, mnist.train_images, mnist.train_labels,
                                10, 2) for k in jax.random.split(
                                    jax.random.key(1), 2)]
  rng = np.random.default_rng(0)
  bad = [(x, rng.permutation(y)) for x, y in good]  # Labels scrambled.
  candidates = [bad[0], good[0], bad[1], good[1]]
  cell = protocol.Cell('0.1', 30, np.zeros(1))
  chosen = protocol.select_sets(apply_fn, params0_M, candidates, cell,
                                mnist.train_images[:512],
                                mnist.train_labels[:512], 2)
  assert {id(c) for c in chosen} == {id(good[0]), id(good[1])}


def test_best_cell_and_tables():
  cells = [protocol.Cell('0.1', 1, np.array([0.2, 0.4])),
           protocol.Cell('0.01', 5, np.array([0.5, 0.7]))]
  assert protocol.best(cells).summary() == {
      'lr': '0.01', 'steps': 5, 'mean': pytest.approx(0.6),
      'std': pytest.approx(0.1), 'n_models': 2}
  md, csv_text = tables.table1({'mnist': {
      'ours_fixed': {'mean': 0.95, 'std': 0.0, 'n_models': 1},
      'random_real': {'mean': 0.8, 'std': 0.02, 'n_models': 30}}})
  assert '| MNIST | ours | 95.0 (n=1) | not run | 80.0 ± 2.0 (n=30)' in md
  assert '| MNIST | paper | 94.4 | 88.5 ± 1.1 | 82.8 ± 1.8' in md
  assert csv_text.splitlines()[0].startswith('dataset,source,"Ours, fixed')


def test_baselines_write_every_column_and_resume(mnist, tmp_path):
  config = table1_config.get_config('quick')
  b = config.baselines
  b.num_models, b.num_sets, b.num_candidates, b.num_selected = 1, 2, 2, 1
  b.selection_models, b.selection_images, b.lrs = 1, 128, '0.1'
  config.mnist.step_counts = '1,10'
  small = dataclasses.replace(
      mnist, train_images=mnist.train_images[:3000],
      train_labels=mnist.train_labels[:3000],
      test_images=mnist.test_images[:500], test_labels=mnist.test_labels[:500])
  path = str(tmp_path / 'baselines.json')
  lrs = np.full(3, 0.05, np.float32)
  done = table1._baselines(config, config.mnist, small, lrs, path)
  columns = [k for k, _ in tables.TABLE1_COLUMNS if not k.startswith('ours')]
  assert sorted(done) == sorted(columns)
  with open(path) as f:
    assert json.load(f) == {**json.loads(json.dumps(done)),
                            'distilled_lrs': lrs.tolist()}
  grid = done['random_real']['grid']
  assert {(c['lr'], c['steps']) for c in grid} == {('0.1', 1), ('0.1', 10),
                                                   ('distilled', 3)}
  # A rerun keeps what is saved instead of recomputing it.
  with open(path) as f:
    saved = json.load(f)
  saved['kmeans']['mean'] = -1.0
  with open(path, 'w') as f:
    json.dump(saved, f)
  again = table1._baselines(config, config.mnist, small, lrs, path)
  assert again['kmeans']['mean'] == -1.0
  # Other distilled lrs (the distilled run went on): computed again, the
  # old columns kept aside.
  other = table1._baselines(config, config.mnist, small, 2 * lrs, path)
  assert other['kmeans']['mean'] == done['kmeans']['mean']
  assert other['random_real']['grid'][-1] != done['random_real']['grid'][-1]
  with open(path + '.stale1') as f:
    assert json.load(f)['kmeans']['mean'] == -1.0
  # So are columns whose lrs were never recorded (older files).
  with open(path) as f:
    saved = json.load(f)
  del saved['distilled_lrs']
  saved['kmeans']['mean'] = -1.0
  with open(path, 'w') as f:
    json.dump(saved, f)
  assert table1._baselines(config, config.mnist, small, 2 * lrs,
                           path)['kmeans']['mean'] == done['kmeans']['mean']
  with open(path + '.stale2') as f:
    assert json.load(f)['kmeans']['mean'] == -1.0


def test_baseline_models_and_sets_are_drawn_apart_from_the_runs(mnist,
                                                               monkeypatch):
  """In JAX split(key, n)[i] is fold_in(key, i), so tables drawing from the
  seed's root would reuse the runs' streams (the fixed init among them)."""
  from ddistill import train  # pylint: disable=g-import-not-at-top
  from ddistill.paper import baseline_columns  # pylint: disable=g-import-not-at-top
  config = table1_config.get_config('quick')
  config.baselines.num_models = 3
  ds = config.mnist
  assert config.seed == ds.fixed.seed == ds.random.seed
  drawn = {}
  monkeypatch.setattr(baseline_columns, 'compute',
                      lambda *args: drawn.update(args=args))
  table1._baselines(config, ds, mnist, None, '')
  _, _, _, _, heldout_M, selection_M, k_sets, *_ = drawn['args']
  model, _ = train.build_model(ds.fixed, 10, mnist.image_shape)
  fixed = train.heldout_inits(ds.fixed, model, mnist.image_shape, 1)
  runs = train.heldout_inits(ds.random, model, mnist.image_shape, 3)
  flat = lambda m, i: np.concatenate([np.ravel(a[i])
                                      for a in jax.tree.leaves(m)])
  theirs = [flat(fixed, 0)] + [flat(runs, i) for i in range(3)]
  for models_M in (heldout_M, selection_M):
    for i in range(len(jax.tree.leaves(models_M)[0])):
      assert not any(np.array_equal(flat(models_M, i), t) for t in theirs)
  used = {tuple(np.asarray(jax.random.key_data(k)).ravel())
          for k in train.run_keys(config.seed).values()
          if k is not train.run_keys(config.seed)['baselines']}
  for i in range(4):  # The columns' keys: compute() splits k_sets in four.
    key = jax.random.fold_in(k_sets, i)
    assert tuple(np.asarray(jax.random.key_data(key)).ravel()) not in used


def test_unknown_table_dataset_is_an_error(tmp_path):
  config = table1_config.get_config('quick')
  config.datasets = 'mnist,imagenet'
  with pytest.raises(ValueError, match="unknown \\['imagenet'\\]"):
    table1.run_table1(config, str(tmp_path))


def test_figure3_validates_and_plots(tmp_path):
  from configs import figure3 as figure3_config
  from ddistill.paper import figure3
  config = figure3_config.get_config('quick')
  config.init_modes = 'fixed,pretrained'
  with pytest.raises(ValueError, match='init_modes'):
    figure3.run_figure3(config, str(tmp_path))
  config.init_modes, config.gd_steps = 'fixed', '0,2'
  with pytest.raises(ValueError, match='gd_steps'):
    figure3.run_figure3(config, str(tmp_path))
  points = [{'init_mode': m, 'gd_steps': n, 'images_per_class': 10,
             'mean': 0.5 + n / 100, 'std': 0.01, 'n_models': 3}
            for m in ('fixed', 'random') for n in (1, 10)]
  figure3._write(points, str(tmp_path), 'mnist')
  assert (tmp_path / 'figure3.png').stat().st_size > 1000
  rows = (tmp_path / 'figure3.csv').read_text().splitlines()
  assert rows[0].startswith('init_mode,gd_steps') and len(rows) == 5


def test_figure3_points_run_apart_are_gathered_without_rerunning(
    mnist, tmp_path, monkeypatch):
  del mnist  # For the skip only: the runs load MNIST themselves.
  from configs import figure3 as figure3_config
  from ddistill import errors
  from ddistill import train
  from ddistill.paper import figure3
  config = figure3_config.get_config('quick')
  config.init_modes = 'fixed'
  apart = []
  for n in ('1', '3'):
    config.gd_steps = n
    apart += figure3.run_figure3(config, str(tmp_path / n))
  config.gd_steps = '1,3'
  with pytest.raises(errors.WorkdirConflict, match='different config'):
    figure3.run_figure3(config, str(tmp_path / '1'))
  gathered = tmp_path / 'gathered'
  for n in ('1', '3'):
    shutil.copytree(tmp_path / n / f'fixed_steps{n}',
                    gathered / f'fixed_steps{n}',
                    ignore=shutil.ignore_patterns('checkpoints'))

  def rerun(*args):
    raise AssertionError(f'a finished point was run again: {args}')

  monkeypatch.setattr(train, 'train_and_evaluate', rerun)
  assert figure3.run_figure3(config, str(gathered)) == apart
  assert (gathered / 'figure3.png').stat().st_size > 1000


def test_minibatch_passes_match_full_batch_steps_with_one_minibatch(mnist):
  apply_fn, params0_M = _mnist_problem(mnist)
  sets = [baselines.random_real(jax.random.key(0), mnist.train_images,
                                mnist.train_labels, 10, 2)]
  test_x, test_y = mnist.test_images[:500], mnist.test_labels[:500]
  full = protocol.cnn_grid(apply_fn, params0_M, sets, [0.1], [3], test_x,
                           test_y)
  one = protocol.cnn_grid(apply_fn, params0_M, sets, [0.1], [3], test_x,
                          test_y, minibatches=1)
  np.testing.assert_allclose(one[0].accs, full[0].accs, atol=3e-3)
  two = protocol.cnn_grid(apply_fn, params0_M, sets, [0.1], [3], test_x,
                          test_y, distilled_lrs=np.full(4, 0.1, np.float32),
                          minibatches=2)
  assert [(c.lr, c.steps) for c in two] == [('0.1', 3), ('distilled', 2)]
  # Average real fills the set with copies, so minibatches hold every class.
  avg_x, avg_y = baselines.average_real(mnist.train_images,
                                        mnist.train_labels, 10, 3)
  assert avg_x.shape[0] == 30 and list(avg_y[10:20]) == list(range(10))
  np.testing.assert_array_equal(avg_x[0], avg_x[10])


def test_table2_needs_its_pools_and_marks_svhn_not_run(tmp_path):
  from configs import table2 as table2_config
  from ddistill.paper import table2
  config = table2_config.get_config('quick')
  config.pools_dir = str(tmp_path)
  with pytest.raises(FileNotFoundError, match='experiments.pretrain'):
    table2.run_table2(config, str(tmp_path / 'out'))
  # A workdir made before baselines.num_models (never read here) left the
  # config still resumes: past the guard, to the missing pool again.
  saved_path = tmp_path / 'out' / 'config.json'
  saved = json.loads(saved_path.read_text())
  saved['baselines']['num_models'] = 200
  saved_path.write_text(json.dumps(saved))
  with pytest.raises(FileNotFoundError, match='experiments.pretrain'):
    table2.run_table2(config, str(tmp_path / 'out'))
  # Our run and the baselines are tested on the same pool: one of the run's
  # own is refused before anything runs.
  config.run.distill.pretrained_dir = str(tmp_path / 'elsewhere')
  with pytest.raises(ValueError, match='pretrained_dir .* leave it empty'):
    table2.run_table2(config, str(tmp_path / 'out2'))
  assert not (tmp_path / 'out2').exists()
  md, _ = tables.table2({'usps_to_mnist': {
      'ours_fixed': {'mean': 0.9, 'std': 0.0, 'n_models': 1}}})
  assert '| SVHN → MNIST | ours | not run (no SVHN offline)' in md
  assert '| USPS → MNIST | paper | 93.2 | 92.7 ± 1.4' in md
