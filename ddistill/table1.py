"""Table 1: our distilled sets and the real-image baselines, per dataset.

`run_table1(config, workdir)` writes, for each dataset, `<workdir>/<name>/`
with the two distillation runs (`ours_fixed/`, `ours_random/`, each a normal
run directory that resumes) and `baselines.json` (every finished baseline with
its whole lr x steps grid; a rerun skips what is already there), then
`table1.md` and `table1.csv` in the workdir.
"""

import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from ddistill import baselines
from ddistill import datasets
from ddistill import inits
from ddistill import protocol
from ddistill import tables
from ddistill import train


def _seed(key: jax.Array) -> int:
  """An int seed for scikit-learn, drawn from a jax key."""
  return int(jax.random.randint(key, (), 0, 2**31 - 1))


def _baselines(config: ml_collections.ConfigDict, ds: ml_collections.ConfigDict,
               data: datasets.Dataset, distilled_lrs: np.ndarray,
               path: str) -> dict[str, Any]:
  """Every baseline column for one dataset, resuming from `path`."""
  b = config.baselines
  done = {}
  if os.path.exists(path):
    with open(path) as f:
      done = json.load(f)

  def save(name, value):
    done[name] = value
    if jax.process_index() == 0:
      with open(path + '.tmp', 'w') as f:
        json.dump(done, f, indent=2)
      os.replace(path + '.tmp', path)  # Never a half-written file.

  x, y, k = data.train_images, data.train_labels, data.num_classes
  keys = dict(zip(('models', 'selection', 'random', 'candidates', 'kmeans',
                   'score'),
                  jax.random.split(jax.random.key(config.seed), 6)))
  model, apply_fn = train.build_model(ds.random, k, data.image_shape)
  params0_M = inits.sample_params(model, keys['models'], b.num_models,
                                  data.image_shape)
  random_sets = [baselines.random_real(s, x, y, k, b.per_class)
                 for s in jax.random.split(keys['random'], b.num_sets)]
  kmeans_sets = None

  def grid(sets):
    cells = protocol.cnn_grid(apply_fn, params0_M, sets, b.lrs,
                              ds.step_counts, data.test_images,
                              data.test_labels, distilled_lrs)
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
    selection_M = inits.sample_params(model, keys['selection'],
                                      b.selection_models, data.image_shape)
    chosen = protocol.select_sets(apply_fn, selection_M, candidates, cell,
                                  x[score_idx], y[score_idx], b.num_selected,
                                  distilled_lrs)
    save('optimized_real', grid(chosen)[1])
  if 'kmeans' not in done or 'knn_kmeans' not in done:
    kmeans_sets = [baselines.kmeans_centres(_seed(s), x, y, k, b.per_class)
                   for s in jax.random.split(keys['kmeans'], b.num_sets)]
  if 'kmeans' not in done:
    save('kmeans', grid(kmeans_sets)[1])
  if 'average_real' not in done:
    save('average_real', grid([baselines.average_real(x, y, k)])[1])
  for name, sets in (('knn_random_real', random_sets),
                     ('knn_kmeans', kmeans_sets)):
    if name not in done:
      rows = protocol.knn_grid(sets, data.test_images, data.test_labels,
                               b.knn_ks, b.knn_metrics)
      best = max(rows, key=lambda r: r['mean'])
      save(name, {**best, 'n_models': len(sets), 'grid': rows})
  return done


def run_table1(config: ml_collections.ConfigDict,
               workdir: str) -> dict[str, dict[str, dict]]:
  """Runs every row of the table; returns {dataset: {column: summary}}."""
  names = [n.strip() for n in config.datasets.split(',') if n.strip()]
  unknown = [n for n in names if n not in tables.TABLE1_PAPER]
  if unknown:
    raise ValueError(f'config.datasets: unknown {unknown}; Table 1 has '
                     f'{sorted(tables.TABLE1_PAPER)}')
  results = {}
  for name in names:
    ds = config[name]
    folder = os.path.join(workdir, name)
    os.makedirs(folder, exist_ok=True)
    fixed = train.run_or_load(ds.fixed, os.path.join(folder, 'ours_fixed'))
    rand = train.run_or_load(ds.random, os.path.join(folder, 'ours_random'))
    distilled_lrs = np.asarray(
        np.load(os.path.join(folder, 'ours_random', 'distilled.npz'))['lrs'])
    data = train.load_data(ds.random)
    cells = _baselines(config, ds, data, distilled_lrs,
                       os.path.join(folder, 'baselines.json'))
    results[name] = {'ours_fixed': fixed['test_accuracy'],
                     'ours_random': rand['test_accuracy'], **cells}
  md, csv_text = tables.table1(results)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'table1.md'), 'w') as f:
      f.write(md)
    with open(os.path.join(workdir, 'table1.csv'), 'w') as f:
      f.write(csv_text)
  return results
