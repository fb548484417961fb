"""The real-image baseline columns of the paper's tables, resumable.

Random real, optimized real, k-means++ and average real sets, each trained
on held-out models over the lr x steps grid (`protocol`), and the KNN
baselines, and fine-tuning on the full target set (Tables 2, 3). Every finished column is saved at once, so a rerun skips it.
"""

import json
import os
import time
from typing import Any, Optional, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np

from ddistill import atomic_files
from ddistill import evaluate
from ddistill import pretrained
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
  Writes `path` after each column.
  """
  done = {}
  if os.path.exists(path):
    with open(path) as f:
      done = json.load(f)

  start = time.time()

  def save(name, value):
    # Columns take minutes to hours each on CPU: say each one as it lands.
    logging.info('baseline %s: %.2f%% +- %.2f (n=%d), %.0f s since start',
                 name, 100 * value['mean'], 100 * value['std'],
                 value['n_models'], time.time() - start)
    done[name] = value
    if jax.process_index() == 0:
      atomic_files.write_json(path, done)

  x, y, k = data.train_images, data.train_labels, data.num_classes
  keys = dict(zip(('random', 'candidates', 'kmeans', 'score'),
                  jax.random.split(key, 4)))
  random_sets = [baselines.random_real(s, x, y, k, b.per_class)
                 for s in jax.random.split(keys['random'], b.num_sets)]
  kmeans_sets = None

  def grid(sets):
    cells = protocol.cnn_grid(apply_fn, heldout_M, sets, b.lrs,
                              step_counts, data.test_images,
                              data.test_labels, distilled_lrs,
                              minibatches=minibatches)
    best = protocol.best(cells)
    return best, {**best.summary(), 'n_sets': len(sets),
                  'grid': [c.summary() for c in cells]}

  if 'random_real' not in done:
    save('random_real', grid(random_sets)[1])
  if 'optimized_real' not in done:
    best_random = done['random_real']
    cell = protocol.Cell(best_random['lr'], best_random['steps'], np.zeros(1))
    candidates = [baselines.random_real(s, x, y, k, b.per_class) for s in
                  jax.random.split(keys['candidates'], b.num_candidates)]
    score_idx = np.asarray(jax.random.choice(keys['score'], len(x),
                                             (b.selection_images,),
                                             replace=False))
    chosen = protocol.select_sets(apply_fn, selection_M, candidates, cell,
                                  x[score_idx], y[score_idx], b.num_selected,
                                  distilled_lrs, minibatches=minibatches)
    save('optimized_real', grid(chosen)[1])
  if kmeans and ('kmeans' not in done or (knn and 'knn_kmeans' not in done)):
    kmeans_sets = [baselines.kmeans_centres(_seed(s), x, y, k, b.per_class)
                   for s in jax.random.split(keys['kmeans'], b.num_sets)]
  if kmeans and 'kmeans' not in done:
    save('kmeans', grid(kmeans_sets)[1])
  if 'average_real' not in done:
    average = baselines.average_real(x, y, k, b.per_class)
    save('average_real', grid([average])[1])
  for name, sets in ((('knn_random_real', random_sets),
                      ('knn_kmeans', kmeans_sets)) if knn else ()):
    if sets is None:  # k-means++ left out.
      continue
    if name not in done:
      rows = protocol.knn_grid(sets, data.test_images, data.test_labels,
                               b.knn_ks, b.knn_metrics)
      best = max(rows, key=lambda r: r['mean'])
      save(name, {**best, 'n_models': len(sets), 'grid': rows})
  return done


def full_target(config, model, apply_fn, heldout_M, data, path) -> dict:
  """Held-out nets fine-tuned on the whole target training set."""
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  start_N = jax.tree.map(lambda a: a[:config.full_target_models], heldout_M)
  tuned = pretrained.pretrain(model, jax.random.key(config.seed),
                              data.train_images, data.train_labels,
                              config.full_target_models,
                              config.full_target_epochs,
                              config.full_target_batch_size,
                              config.full_target_lr,
                              config.full_target_epochs, start_N=start_N)
  accs = evaluate.evaluate_set(apply_fn, tuned, data.train_images[:1][None],
                               data.train_labels[:1][None],
                               np.zeros(0, np.float32), data.test_images,
                               data.test_labels)
  result = evaluate.summarize(accs)
  atomic_files.write_json(path, result)
  return result
