"""Table 3: an ImageNet AlexNet adapted to PASCAL-VOC and CUB-200.

`run_table3(config, workdir)`: per row (target), our distillation from the
fixed pretrained net (one image per class, one step applied 3 times), the
random-real, optimized-real and average-real baselines trained from the same
net with {1, 3, 5} GD steps (best lr), and fine-tuning on the whole target
training set; then table3.md and table3.csv. Rerunning resumes.

Needs a pool per target from `experiments.pretrain` with
`configs/pretrain.py:imagenet_alexnet` in `<pools_dir>/<target>/`.
"""

import os

import jax
import ml_collections
import numpy as np

from ddistill import config_checks
from ddistill.paper import adaptation
from ddistill.paper import baseline_columns
from ddistill import pretrained
from ddistill.paper import tables
from ddistill import train
from ddistill import workdir as workdir_lib
from ddistill.data import transfer


def run_table3(config: ml_collections.ConfigDict, workdir: str,
               fresh: bool = False) -> dict[str, dict[str, dict]]:
  """Runs every row of the table; returns {target: {column: summary}}.

  fresh: first delete every row and table already in `workdir`.
  """
  config_checks.validate(config, 'table3')
  rows = workdir_lib.names(config.rows)
  workdir_lib.guard(
      workdir, config, fresh,
      outputs=(*transfer.SPECS, 'table3.md', 'table3.csv'),
      compare=baseline_columns.guard_compare(
          unread=('num_models', 'selection_models', 'knn_ks',
                  'knn_metrics')))
  results = {}
  for row in rows:
    folder = os.path.join(workdir, row)
    os.makedirs(folder, exist_ok=True)
    pool_dir = workdir_lib.pool_dir(
        config.pools_dir, row, '--config configs/pretrain.py:imagenet_alexnet '
        f'--config.weights=alexnet.npz --config.data.name={row}')
    run = ml_collections.ConfigDict(config.run.to_dict())
    run.data.name = row
    run.distill.pretrained_dir = pool_dir
    data, _ = train.load_split_data(run)  # As the run sees it.
    adaptation.outer_loop_in_epochs(config, run, len(data.train_images))
    ours = train.run_or_load(run, os.path.join(folder, 'ours'))
    model, _ = train.build_model(run, data.num_classes, data.image_shape)
    apply_fn = train.first_order_apply(run, model)
    pool = pretrained.load_pool(pool_dir, model, data.image_shape)
    # Fixed pretrained: the baselines train the net our data was made for.
    net_M = jax.tree.map(lambda a: a[:1], pool['train'])
    distilled_lrs = np.load(os.path.join(folder, 'ours',
                                         'distilled.npz'))['lrs']
    cells = baseline_columns.compute(
        config.baselines, workdir_lib.numbers(config.gd_steps, 'gd_steps', int),
        data, apply_fn, net_M, net_M,
        train.run_keys(config.seed)['baselines'], distilled_lrs,
        os.path.join(folder, 'baselines.json'), knn=False, kmeans=False)
    results[row] = {'ours': ours['test_accuracy'], **cells}
    results[row]['full_target'] = baseline_columns.full_target(
        config, model, apply_fn, net_M, data,
        os.path.join(folder, 'full_target.json'))
  workdir_lib.write_table(os.path.join(workdir, 'table3'),
                          *tables.table3(results))
  return results
