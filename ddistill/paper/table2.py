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

from ddistill import atomic_files
from ddistill.paper import baseline_columns
from ddistill import evaluate
from ddistill import pretrained
from ddistill.paper import tables
from ddistill import train


ROWS = {'mnist_to_usps': ('mnist', 'usps'), 'usps_to_mnist': ('usps', 'mnist'),
        'svhn_to_mnist': ('svhn', 'mnist')}  # row -> (source, target)


def _pool_dir(config, source: str) -> str:
  path = os.path.join(config.pools_dir, source)
  if not config.pools_dir or not os.path.isdir(os.path.join(path, 'params')):
    raise FileNotFoundError(
        f'no pretrained {source} pool at {path!r}: run `python -m '
        f'experiments.pretrain --config configs/pretrain.py:{source} '
        f'--workdir {path or "POOLS/" + source}` and set config.pools_dir')
  return path


def run_table2(config: ml_collections.ConfigDict,
               workdir: str) -> dict[str, dict[str, dict]]:
  rows = [r.strip() for r in config.rows.split(',') if r.strip()]
  unknown = [r for r in rows if r not in ROWS]
  if unknown:
    raise ValueError(f'config.rows: unknown {unknown}; known: '
                     f'{sorted(ROWS)}')
  results = {}
  for row in rows:
    source, _ = ROWS[row]
    folder = os.path.join(workdir, row)
    os.makedirs(folder, exist_ok=True)
    pool_dir = _pool_dir(config, source)
    runs = {}
    for mode in ('fixed', 'random'):
      run = ml_collections.ConfigDict(config.runs[row][mode].to_dict())
      run.distill.pretrained_dir = run.distill.pretrained_dir or pool_dir
      run.eval.num_models = config.num_models
      runs[mode] = run
      results.setdefault(row, {})[f'ours_{mode}'] = train.run_or_load(
          run, os.path.join(folder, f'ours_{mode}'))['test_accuracy']
    data = train.load_data(runs['random'])
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
        config.baselines, config.passes, data, apply_fn, heldout_M,
        selection_M, jax.random.key(config.seed), distilled_lrs,
        os.path.join(folder, 'baselines.json'), knn=False,
        minibatches=runs['random'].distill.steps)
    no_adapt = evaluate.evaluate_set(
        apply_fn, heldout_M, data.train_images[:1][None],
        data.train_labels[:1][None], np.zeros(0, np.float32),
        data.test_images, data.test_labels)
    results[row].update(cells)
    results[row]['no_adaptation'] = evaluate.summarize(no_adapt)
    results[row]['full_target'] = baseline_columns.full_target(
        config, model, apply_fn, heldout_M, data,
        os.path.join(folder, 'full_target.json'))
  md, csv_text = tables.table2(results)
  if jax.process_index() == 0:
    atomic_files.write_text(os.path.join(workdir, 'table2.md'), md)
    atomic_files.write_text(os.path.join(workdir, 'table2.csv'), csv_text)
  return results
