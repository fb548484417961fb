"""Table 2: adapting pretrained LeNets among MNIST, USPS and SVHN.

`run_table2(config, workdir)`: per row (source -> target), our fixed- and
random-pretrained distillations (`<workdir>/<row>/ours_*`), the real-image
baselines trained from the held-out pretrained nets (10 minibatches per
pass, {1, 3, 5} passes, best lr), no adaptation, and fine-tuning on the full
target set; then table2.md and table2.csv. Rerunning resumes.
"""

import os

import jax
import ml_collections
import numpy as np

from ddistill import config_checks
from ddistill.paper import adaptation
from ddistill.paper import baseline_columns
from ddistill import evaluate
from ddistill import pretrained
from ddistill.paper import tables
from ddistill import train
from ddistill import workdir as workdir_lib


ROWS = {'mnist_to_usps': ('mnist', 'usps'), 'usps_to_mnist': ('usps', 'mnist'),
        'svhn_to_mnist': ('svhn', 'mnist')}  # row -> (source, target)


def row_runs(config: ml_collections.ConfigDict, target: str,
             pool_dir: str) -> dict[str, ml_collections.ConfigDict]:
  """Our fixed- and random-pretrained runs of one row, their outer loop
  still to be set from the target's size (`adaptation.outer_loop_in_epochs`).
  """
  runs = {}
  for mode in ('fixed', 'random'):
    run = ml_collections.ConfigDict(config.run.to_dict())
    run.data.name = target
    run.distill.init_mode = f'{mode}_pretrained'
    run.distill.pretrained_dir = pool_dir
    run.eval.num_models = config.num_models
    runs[mode] = run
  return runs


def run_table2(config: ml_collections.ConfigDict, workdir: str,
               fresh: bool = False) -> dict[str, dict[str, dict]]:
  """Runs every row of the table; returns {row: {column: summary}}.

  fresh: first delete every row and table already in `workdir`.
  """
  config_checks.validate(config, 'table2', rows=ROWS)
  rows = workdir_lib.names(config.rows)
  workdir_lib.guard(
      workdir, config, fresh, outputs=(*ROWS, 'table2.md', 'table2.csv'),
      compare=baseline_columns.guard_compare(
          unread=('num_models', 'knn_ks', 'knn_metrics')))
  results = {}
  for row in rows:
    source, target = ROWS[row]
    folder = os.path.join(workdir, row)
    os.makedirs(folder, exist_ok=True)
    pool_dir = workdir_lib.pool_dir(config.pools_dir, source,
                                    f'--config configs/pretrain.py:{source}')
    runs = row_runs(config, target, pool_dir)
    data, _ = train.load_split_data(runs['random'])  # As the runs see it.
    for mode, run in runs.items():
      adaptation.outer_loop_in_epochs(config, run, len(data.train_images))
      results.setdefault(row, {})[f'ours_{mode}'] = train.run_or_load(
          run, os.path.join(folder, f'ours_{mode}'))['test_accuracy']
    model, _ = train.build_model(runs['random'], data.num_classes,
                                 data.image_shape)
    apply_fn = train.first_order_apply(runs['random'], model)
    pool = pretrained.load_pool(pool_dir, model, data.image_shape)
    heldout_M = jax.tree.map(lambda a: a[:config.num_models], pool['heldout'])
    selection_M = jax.tree.map(
        lambda a: a[:config.baselines.selection_models], pool['train'])
    distilled_lrs = np.load(os.path.join(folder, 'ours_random',
                                         'distilled.npz'))['lrs']
    cells = baseline_columns.compute(
        config.baselines, workdir_lib.numbers(config.passes, 'passes', int),
        data, apply_fn, heldout_M,
        selection_M, train.run_keys(config.seed)['baselines'], distilled_lrs,
        os.path.join(folder, 'baselines.json'), knn=False,
        minibatches=runs['random'].distill.steps)
    no_adapt = evaluate.accuracy(apply_fn, heldout_M, data.test_images,
                                 data.test_labels)
    results[row].update(cells)
    results[row]['no_adaptation'] = evaluate.summarize(no_adapt)
    results[row]['full_target'] = baseline_columns.full_target(
        config, model, apply_fn, heldout_M, data,
        os.path.join(folder, 'full_target.json'))
  workdir_lib.write_table(os.path.join(workdir, 'table2'),
                          *tables.table2(results))
  return results
