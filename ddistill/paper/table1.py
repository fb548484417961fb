"""Table 1: our distilled sets and the real-image baselines, per dataset.

`run_table1(config, workdir)` writes, for each dataset, `<workdir>/<name>/`
with the two distillation runs (`ours_fixed/`, `ours_random/`, each a normal
run directory that resumes) and `baselines.json` (every finished baseline with
its whole lr x steps grid; a rerun skips what is already there), then
`table1.md` and `table1.csv` in the workdir.
"""

import os
from typing import Any

import jax
import ml_collections
import numpy as np

from ddistill import config_checks
from ddistill.paper import baseline_columns
from ddistill.paper import baselines
from ddistill.data import datasets
from ddistill import inits
from ddistill.paper import tables
from ddistill import train
from ddistill import workdir as workdir_lib


def _baselines(config: ml_collections.ConfigDict, ds: ml_collections.ConfigDict,
               data: datasets.Dataset, distilled_lrs: np.ndarray,
               path: str) -> dict[str, Any]:
  """Every baseline column for one dataset, on fresh random inits (a key
  stream of their own: never the runs' inits, even for the same seed)."""
  b = config.baselines
  k_models, k_selection, k_sets = jax.random.split(
      train.run_keys(config.seed)['baselines'], 3)
  model, _ = train.build_model(ds.random, data.num_classes, data.image_shape)
  apply_fn = train.first_order_apply(ds.random, model)
  heldout_M = inits.sample_params(model, k_models, b.num_models,
                                  data.image_shape)
  selection_M = inits.sample_params(model, k_selection, b.selection_models,
                                    data.image_shape)
  step_counts = workdir_lib.numbers(ds.step_counts, 'step_counts', int)
  return baseline_columns.compute(b, step_counts, data, apply_fn,
                                  heldout_M, selection_M, k_sets,
                                  distilled_lrs, path)


def run_table1(config: ml_collections.ConfigDict, workdir: str,
               fresh: bool = False) -> dict[str, dict[str, dict]]:
  """Runs every row of the table; returns {dataset: {column: summary}}.

  fresh: first delete every row and table already in `workdir`.
  """
  config_checks.validate(config, 'table1', knn_metrics=baselines.KNN_METRICS)
  names = workdir_lib.names(config.datasets)
  workdir_lib.guard(workdir, config, fresh, compare=train.without_runs,
                    outputs=(*tables.TABLE1_PAPER, 'table1.md', 'table1.csv'))
  results = {}
  for name in names:
    ds = config[name]
    folder = os.path.join(workdir, name)
    os.makedirs(folder, exist_ok=True)
    fixed = train.run_or_load(ds.fixed, os.path.join(folder, 'ours_fixed'))
    rand = train.run_or_load(ds.random, os.path.join(folder, 'ours_random'))
    distilled_lrs = np.asarray(
        np.load(os.path.join(folder, 'ours_random', 'distilled.npz'))['lrs'])
    data, _ = train.load_split_data(ds.random)  # As the runs saw it.
    cells = _baselines(config, ds, data, distilled_lrs,
                       os.path.join(folder, 'baselines.json'))
    results[name] = {'ours_fixed': fixed['test_accuracy'],
                     'ours_random': rand['test_accuracy'], **cells}
  workdir_lib.write_table(os.path.join(workdir, 'table1'),
                          *tables.table1(results))
  return results
