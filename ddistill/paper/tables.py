"""The paper's tables as Markdown and CSV, our figures beside the paper's."""

import os
from typing import Optional

from ddistill import workdir as workdir_lib
from ddistill.errors import DataError

# Table 1: test accuracy (%) with ten images per class.
TABLE1_COLUMNS = (
    ('ours_fixed', 'Ours, fixed init'),
    ('ours_random', 'Ours, random init'),
    ('random_real', 'Random real (CNN)'),
    ('optimized_real', 'Optimized real (CNN)'),
    ('kmeans', 'k-means++ (CNN)'),
    ('average_real', 'Average real (CNN)'),
    ('knn_random_real', 'Random real (KNN)'),
    ('knn_kmeans', 'k-means++ (KNN)'),
)
TABLE1_PAPER = {  # (mean, std or None), in %.
    'mnist': {'ours_fixed': (94.4, None), 'ours_random': (88.5, 1.1),
              'random_real': (82.8, 1.8), 'optimized_real': (83.8, 2.1),
              'kmeans': (86.7, 1.4), 'average_real': (77.7, 2.7),
              'knn_random_real': (71.5, 2.1), 'knn_kmeans': (92.4, 0.2)},
    'cifar10': {'ours_fixed': (45.2, None), 'ours_random': (41.2, 0.9),
                'random_real': (24.8, 1.5), 'optimized_real': (24.9, 1.4),
                'kmeans': (26.7, 1.8), 'average_real': (22.8, 0.8),
                'knn_random_real': (18.8, 1.3), 'knn_kmeans': (29.4, 0.4)},
}
TABLE1_NOTE = (
    'Test accuracy in %, mean ± std. n counts held-out models (times sets for '
    'the CNN baselines; each set is trained on the same held-out models) and '
    'reference sets for KNN. CNN baselines report their best lr x GD-steps '
    'combination and KNN its best k and distance, picked on test accuracy as '
    'in the paper.')
DATASET_LABELS = {'mnist': 'MNIST',
                  'cifar10': 'CIFAR-10 (JPEG copy, lossy)'}


def _ours(result: Optional[dict]) -> str:
  """'mean ± std (n)' in %, from {'mean', 'std', 'n_models'} fractions."""
  if not result:
    return 'not run'
  n = result.get('n_models', 1)
  if n <= 1:
    return f"{100 * result['mean']:.1f} (n=1)"
  return f"{100 * result['mean']:.1f} ± {100 * result['std']:.1f} (n={n})"


def _paper(figure: tuple) -> str:
  mean, std = figure
  return f'{mean:.1f}' if std is None else f'{mean:.1f} ± {std:.1f}'


def table1(results: dict[str, dict[str, dict]]) -> tuple[str, str]:
  """Markdown and CSV for {dataset: {column: summary}}; rows ours, paper."""
  header = ['dataset', 'source'] + [label for _, label in TABLE1_COLUMNS]
  rows = []
  for name, cells in results.items():
    label = DATASET_LABELS.get(name, name)
    rows.append([label, 'ours'] + [_ours(cells.get(key))
                                   for key, _ in TABLE1_COLUMNS])
    paper = TABLE1_PAPER.get(name, {})
    rows.append([label, 'paper'] + [_paper(paper[key]) if key in paper else
                                    '' for key, _ in TABLE1_COLUMNS])
  return workdir_lib.table(header, rows, TABLE1_NOTE)


# Table 4: final average accuracy (%) over all tasks; None: not in the paper.
TABLE4_ROWS = (  # (variant workdir, memory per task, method, paper MNIST, C100)
    ('gem', 10, 'GEM', 67.4, 43.8),
    ('gem_distilled', 10, 'GEM + ours (distilled memory)', 75.6, 52.8),
    ('icarl', 10, 'iCaRL', None, 42.4),
    ('gem40', 40, 'GEM', 75.3, 51.6),
    ('icarl40', 40, 'iCaRL', None, 45.8),
    ('gem50', 50, 'GEM', 75.8, 52.4),
    ('icarl50', 50, 'iCaRL', None, 46.9),
    ('ewc', 0, 'EWC (no memory)', 63.5, 45.6),
    ('sgd', 0, 'Plain SGD (no memory; not in the paper)', None, None),
)


def table4_from_runs(runs_dir: str) -> tuple[str, str]:
  """Markdown and CSV of Table 4 from `<runs_dir>/<variant>/results.json`.

  Permuted MNIST reads `<variant>`, CIFAR-100 `cifar100_<variant>`
  (the variants of configs/continual.py).
  """
  if not os.path.isdir(runs_dir):
    raise DataError(f'{runs_dir}: folder not found (the experiments.'
                    'continual workdirs, one per variant)')
  header = ['memory / task', 'method', 'permuted MNIST, ours', 'paper',
            'CIFAR-100, ours', 'paper']
  rows = []
  fmt = lambda v: '—' if v is None else f'{v:.1f}'
  for variant, memory, method, paper_mnist, paper_c100 in TABLE4_ROWS:
    mnist = _table4_cell(runs_dir, variant, 'not run')
    if variant.startswith('icarl'):  # Needs classes that arrive over time.
      mnist = '— (class-incremental only)'
    c100 = _table4_cell(runs_dir, f'cifar100_{variant}',
                        'not run (no CIFAR-100 offline)')
    rows.append([memory, method, mnist, fmt(paper_mnist), c100,
                 fmt(paper_c100)])
  return workdir_lib.table(header, rows)


def _table4_cell(runs_dir: str, variant: str, missing: str) -> str:
  path = os.path.join(runs_dir, variant, 'results.json')
  r = workdir_lib.read_json(path)
  if r is None:
    return missing
  if not isinstance(r, dict) or 'final_accuracy' not in r:
    raise DataError(f'{path}: not the results of an experiments.continual '
                    'run (no final_accuracy)')
  acc = r['final_accuracy']
  return (f"{100 * acc['mean']:.1f} ± {100 * acc['std']:.1f} "
          f"({acc['n_seeds']} seeds; {_setting(r['best_setting'])}"
          f"{_distilled_with(r['config'])})")


def _distilled_with(config: dict) -> str:
  """How a distilled memory was made (the paper: 2,000 GD steps)."""
  learner = config['learner']
  if learner['memory'] != 'distilled':
    return ''
  d = learner['distill']
  return (f"; distilled with {d['gd_steps']} GD steps, {d['iterations']} "
          f"iterations")


def _setting(setting: dict) -> str:
  return ', '.join(f'{k} {v:g}' for k, v in setting.items())


TABLE2_COLUMNS = (
    ('ours_fixed', 'Ours, fixed pretrained'),
    ('ours_random', 'Ours, random pretrained'),
    ('random_real', 'Random real'),
    ('optimized_real', 'Optimized real'),
    ('kmeans', 'k-means++'),
    ('average_real', 'Average real'),
    ('no_adaptation', 'No adaptation'),
    ('full_target', 'Train on full target'),
)
TABLE2_PAPER = {
    'mnist_to_usps': {'ours_fixed': (97.9, None), 'ours_random': (95.4, 1.8),
                      'random_real': (94.9, 0.8),
                      'optimized_real': (95.2, 0.7), 'kmeans': (94.8, 0.7),
                      'average_real': (93.9, 0.8),
                      'no_adaptation': (90.4, 3.0),
                      'full_target': (97.3, 0.3)},
    'usps_to_mnist': {'ours_fixed': (93.2, None), 'ours_random': (92.7, 1.4),
                      'random_real': (87.1, 2.9),
                      'optimized_real': (87.6, 2.1), 'kmeans': (88.0, 2.2),
                      'average_real': (78.4, 5.0),
                      'no_adaptation': (67.5, 3.9),
                      'full_target': (98.6, 0.5)},
    'svhn_to_mnist': {'ours_fixed': (96.2, None), 'ours_random': (85.2, 4.7),
                      'random_real': (84.6, 2.1),
                      'optimized_real': (85.2, 1.2), 'kmeans': (86.5, 1.2),
                      'average_real': (74.9, 2.6),
                      'no_adaptation': (51.6, 2.8),
                      'full_target': (98.6, 0.5)},
}
TABLE2_LABELS = {'mnist_to_usps': 'MNIST → USPS',
                 'usps_to_mnist': 'USPS → MNIST',
                 'svhn_to_mnist': 'SVHN → MNIST'}
TABLE2_NOTE = (
    'Test accuracy on the target test set, %, mean ± std over held-out '
    'pretrained nets (n; times sets for the baselines). Baselines: best lr '
    'and number of passes {1, 3, 5}.')


def table2(results: dict[str, dict[str, dict]]) -> tuple[str, str]:
  """Markdown and CSV for {row: {column: summary}}, all three rows shown."""
  header = ['adaptation', 'source'] + [label for _, label in TABLE2_COLUMNS]
  rows = []
  for row, paper in TABLE2_PAPER.items():
    label = TABLE2_LABELS[row]
    cells = results.get(row)
    missing = ('not run (no SVHN offline)' if row == 'svhn_to_mnist' else
               'not run')
    rows.append([label, 'ours'] + [_ours(cells.get(k)) if cells else missing
                                   for k, _ in TABLE2_COLUMNS])
    rows.append([label, 'paper'] + [_paper(paper[k])
                                    for k, _ in TABLE2_COLUMNS])
  return workdir_lib.table(header, rows, TABLE2_NOTE)


TABLE3_COLUMNS = (
    ('ours', 'Ours'),
    ('random_real', 'Random real'),
    ('optimized_real', 'Optimized real'),
    ('average_real', 'Average real'),
    ('full_target', 'Fine-tune on full target'),
)
TABLE3_PAPER = {
    'voc2007': {'ours': (70.75, None), 'random_real': (19.41, 3.73),
                'optimized_real': (23.82, 3.66), 'average_real': (9.94, None),
                'full_target': (75.57, 0.18)},
    'cub200': {'ours': (38.76, None), 'random_real': (7.11, 0.66),
               'optimized_real': (7.23, 0.78), 'average_real': (2.88, None),
               'full_target': (41.21, 0.51)},
}
TABLE3_LABELS = {'voc2007': 'PASCAL-VOC 2007 (object crops)',
                 'cub200': 'CUB-200-2011'}
TABLE3_NOTE = (
    'Test accuracy on the target test set, %, of an ImageNet AlexNet adapted '
    'with one image per class. Ours: one step applied 3 times with learned '
    'lrs. Baselines: best lr and number of GD steps {1, 3, 5}, mean ± std '
    'over sets (n).')


def table3(results: dict[str, dict[str, dict]]) -> tuple[str, str]:
  """Markdown and CSV for {target: {column: summary}}, both rows shown."""
  header = ['target', 'source'] + [label for _, label in TABLE3_COLUMNS]
  rows = []
  for row, paper in TABLE3_PAPER.items():
    cells = results.get(row)
    rows.append([TABLE3_LABELS[row], 'ours'] + [
        _ours(cells.get(k)) if cells else 'not run'
        for k, _ in TABLE3_COLUMNS])
    rows.append([TABLE3_LABELS[row], 'paper'] + [
        _paper(paper[k]) for k, _ in TABLE3_COLUMNS])
  return workdir_lib.table(header, rows, TABLE3_NOTE)
