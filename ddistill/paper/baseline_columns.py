"""The real-image baseline columns of the paper's tables, resumable.

Random real, optimized real, k-means++ and average real sets, each trained
on held-out models over the lr x steps grid (`protocol`), and the KNN
baselines, and fine-tuning on the full target set (Tables 2, 3). Every
finished column is saved at once, so a rerun skips it.
"""

import functools
import itertools
import os
import time
from typing import Any, Callable, Optional, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np

from ddistill import evaluate
from ddistill import pretrained
from ddistill import train
from ddistill import workdir as workdir_lib
from ddistill.paper import adaptation
from ddistill.paper import baselines
from ddistill.data import datasets
from ddistill.paper import protocol


def _seed(key: jax.Array) -> int:
  """An int seed for scikit-learn, drawn from a jax key."""
  return int(jax.random.randint(key, (), 0, 2**31 - 1))


def compute(b: ml_collections.ConfigDict, step_counts: Sequence[int],
            data: datasets.Dataset, apply_fn, heldout_M, selection_M,
            key: jax.Array, distilled_lrs: Optional[np.ndarray], path: str,
            knn: bool = True, minibatches: int = 0,
            kmeans: bool = True) -> dict[str, Any]:
  """Every baseline column, resuming from the JSON file at `path`.

  b: the baseline settings (configs/table1.py's `baselines`). heldout_M:
  the models every set is evaluated on; selection_M: the models optimized
  real scores its candidates on. minibatches: see `protocol.cnn_grid`.
  knn, kmeans: whether to compute those columns (Table 3 has neither).
  Each column is saved in `path` as soon as it is computed.
  """
  _forget_other_lrs(path, distilled_lrs)
  x, y, k = data.train_images, data.train_labels, data.num_classes
  keys = dict(zip(('random', 'candidates', 'kmeans', 'score'),
                  jax.random.split(key, 4)))
  column = _column_fn(path)
  random_sets = functools.cache(lambda: [
      baselines.random_real(s, x, y, k, b.per_class)
      for s in jax.random.split(keys['random'], b.num_sets)])
  kmeans_sets = functools.cache(lambda: [
      baselines.kmeans_centres(_seed(s), x, y, k, b.per_class)
      for s in jax.random.split(keys['kmeans'], b.num_sets)])

  def grid(sets):
    cells = protocol.cnn_grid(apply_fn, heldout_M, sets,
                              workdir_lib.numbers(b.lrs, 'baselines.lrs'),
                              step_counts, data.test_images,
                              data.test_labels, distilled_lrs,
                              minibatches=minibatches)
    return {**protocol.best(cells).summary(), 'n_sets': len(sets),
            'grid': [c.summary() for c in cells]}

  def optimized(best_random):
    return protocol.select_sets(
        apply_fn, selection_M, _candidates(b, data, keys),
        protocol.Cell(best_random['lr'], best_random['steps'], np.zeros(1)),
        *_score_images(b, data, keys['score']), b.num_selected,
        distilled_lrs, minibatches=minibatches)

  # Cheapest first, so a run stopped partway keeps the most columns: KNN
  # trains nothing, average real is one set, optimized real scores its
  # candidates before its grid.
  done = {}
  if knn:
    done['knn_random_real'] = column(
        'knn_random_real', lambda: _knn(b, data, random_sets()))
  if knn and kmeans:
    done['knn_kmeans'] = column('knn_kmeans',
                                lambda: _knn(b, data, kmeans_sets()))
  done['average_real'] = column('average_real', lambda: grid(
      [baselines.average_real(x, y, k, b.per_class)]))
  done['random_real'] = column('random_real', lambda: grid(random_sets()))
  if kmeans:
    done['kmeans'] = column('kmeans', lambda: grid(kmeans_sets()))
  done['optimized_real'] = column(
      'optimized_real', lambda: grid(optimized(done['random_real'])))
  return done


def guard_compare(unread: Sequence[str]) -> Callable[[dict], dict]:
  """What a table's workdir guard compares: its config without its runs
  (each run's workdir guards it) and without the baseline fields `unread`
  that the table never read; older versions of its configs held them, and
  workdirs made with those still resume. So do those made before Tables 2
  and 3 had `adaptation.EPOCH_FIELDS`: at 0 (off) they are compared as
  absent."""
  def compared(config: dict) -> dict:
    config = {k: v for k, v in train.without_runs(config).items()
              if not (k in adaptation.EPOCH_FIELDS and not v)}
    config['baselines'] = {k: v for k, v in config['baselines'].items()
                           if k not in unread}
    return config

  return compared


def _forget_other_lrs(path: str, distilled_lrs: Optional[np.ndarray]) -> None:
  """Records in `path` the distilled lrs its columns are computed with.

  Columns computed with other lrs (the distilled run has changed since), or
  by code that did not record them, are moved aside to `<path>.stale<n>`
  (the first free n) and computed again: every column's grid has a cell
  with those lrs, and optimized real may have chosen with it.
  """
  lrs = (None if distilled_lrs is None else
         [float(v) for v in np.ravel(distilled_lrs)])
  saved = workdir_lib.read_json(path, {})
  if saved and saved.get('distilled_lrs', 'unrecorded') != lrs:
    aside = next(f'{path}.stale{n}' for n in itertools.count(1)
                 if not os.path.exists(f'{path}.stale{n}'))
    logging.warning('%s holds baselines computed with other or unrecorded '
                    'distilled lrs; moved to %s, computing them again', path,
                    aside)
    workdir_lib.write_json(aside, saved)
    workdir_lib.write_json(path, {}, indent=None)
  workdir_lib.cached_json(path, lambda: lrs, key='distilled_lrs')


def _column_fn(path: str):
  """column(name, compute): the column saved in `path`, or computed, logged
  and saved."""
  start = time.time()

  def column(name, compute):
    def logged():
      value = compute()
      # Columns take minutes to hours each on CPU: say each as it lands.
      logging.info('baseline %s: %.2f%% +- %.2f (n=%d), %.0f s since start',
                   name, 100 * value['mean'], 100 * value['std'],
                   value['n_models'], time.time() - start)
      return value
    return workdir_lib.cached_json(path, logged, key=name)

  return column


def _candidates(b, data: datasets.Dataset, keys) -> list:
  """Optimized real's candidate sets: random real sets to choose from."""
  return [baselines.random_real(s, data.train_images, data.train_labels,
                                data.num_classes, b.per_class)
          for s in jax.random.split(keys['candidates'], b.num_candidates)]


def _score_images(b, data: datasets.Dataset, key: jax.Array):
  """The training images optimized real scores its candidates on."""
  idx = np.asarray(jax.random.choice(key, len(data.train_images),
                                     (b.selection_images,), replace=False))
  return data.train_images[idx], data.train_labels[idx]


def _knn(b, data: datasets.Dataset, sets) -> dict:
  """The best (k, metric) of KNN over these reference sets, with the grid."""
  rows = protocol.knn_grid(
      sets, data.test_images, data.test_labels,
      workdir_lib.numbers(b.knn_ks, 'baselines.knn_ks', int),
      workdir_lib.names(b.knn_metrics))
  best = max(rows, key=lambda r: r['mean'])
  return {**best, 'n_models': len(sets), 'grid': rows}


def full_target(config, model, apply_fn, heldout_M, data, path) -> dict:
  """Held-out nets fine-tuned on the whole target training set (cached in
  `path`)."""
  def compute():
    start_N = jax.tree.map(lambda a: a[:config.full_target_models],
                           heldout_M)
    tuned = pretrained.pretrain(model,
                                train.run_keys(config.seed)['full_target'],
                                data.train_images, data.train_labels,
                                config.full_target_models,
                                config.full_target_epochs,
                                config.full_target_batch_size,
                                config.full_target_lr,
                                config.full_target_epochs, start_N=start_N)
    return evaluate.summarize(evaluate.accuracy(
        apply_fn, tuned, data.test_images, data.test_labels))

  return workdir_lib.cached_json(path, compute)
