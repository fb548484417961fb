"""A continual-learning experiment: every seed x hyperparameter, best reported.

`run_continual(config, workdir)` writes to the workdir:
  runs.json     every finished (hyperparameter, seed) run with its accuracy
                matrix; a rerun skips them (resume);
  memories/     distilled memories, one .npz per (seed, task), reused across
                GEM margins and reruns;
  results.json  the best hyperparameter's final average accuracy, mean ± std
                over seeds, and its accuracy matrices;
  setup.json    the config without its grid fields: a rerun with more seeds or
                margins adds runs, one with another setup is refused.
"""

import json
import os
import shutil
from typing import Callable, Optional

import jax
import ml_collections
import numpy as np

from ddistill import atomic_files
from ddistill.continual import learners
from ddistill.data import datasets
from ddistill import export
from ddistill.continual import icarl
from ddistill import inits
from ddistill import models
from ddistill.continual import streams
from ddistill.errors import WorkdirConflict


METHODS = learners.METHODS + ('icarl',)  # icarl lives in ddistill/continual/icarl.py.


def _floats(text: str, field: str) -> list[float]:
  try:
    values = [float(v) for v in str(text).split(',') if v.strip()]
  except ValueError as e:
    raise ValueError(f'config.{field}: {text!r} is not comma-separated '
                     'numbers') from e
  if not values:
    raise ValueError(f'config.{field} is empty')
  return values


def grid(config: ml_collections.ConfigDict) -> list[tuple[str, float]]:
  """The (learner field, value) settings the method is tried with."""
  method = config.learner.method
  if method == 'gem':
    return [('gem_margin', v) for v in _floats(config.gem_margins,
                                                'gem_margins')]
  if method == 'ewc':
    return [('ewc_lambda', v) for v in _floats(config.ewc_lambdas,
                                                'ewc_lambdas')]
  if method == 'icarl':
    return [('icarl_reg', v) for v in _floats(config.icarl_regs,
                                               'icarl_regs')]
  if method == 'sgd':
    return [('lr', config.learner.lr)]
  raise ValueError(f'config.learner.method {method!r}; known: {METHODS}')


def _memory_fn(config, model, seed: int, workdir: str) -> Optional[Callable]:
  """Distilled memories, cached on disk per (seed, task); None for real."""
  if config.learner.memory == 'real':
    return None
  if config.learner.memory != 'distilled':
    raise ValueError(f"config.learner.memory {config.learner.memory!r}; use "
                     "'real' or 'distilled'")
  folder = os.path.join(workdir, 'memories')
  os.makedirs(folder, exist_ok=True)
  key = jax.random.fold_in(jax.random.key(seed), 1)

  def make(t, task):
    path = os.path.join(folder, f'seed{seed}_task{t}.npz')
    if os.path.exists(path):
      d = export.load_distilled(path)
      return d.images[0], d.labels[0]
    x, y, _ = learners.distilled_memory(task, jax.random.fold_in(key, t),
                                         model, config.learner.distill)
    export.save_distilled(path, export.DistilledSet(
        x[None], y[None], np.zeros(1, np.float32), np.zeros(1), np.ones(1),
        1))
    return x, y

  return make


STREAMS = ('permuted_mnist', 'split_cifar100')
# Config fields that only list runs; changing them keeps the finished ones.
GRID_FIELDS = ('seeds', 'gem_margins', 'ewc_lambdas', 'icarl_regs')



def check_workdir(config: ml_collections.ConfigDict, workdir: str,
                  fresh: bool = False) -> None:
  """Refuses to mix runs or cached memories of different setups."""
  setup = json.loads(config.to_json())
  for field in GRID_FIELDS:
    setup.pop(field, None)
  path = os.path.join(workdir, 'setup.json')
  if fresh:
    for name in ('runs.json', 'results.json', 'setup.json', 'memories'):
      target = os.path.join(workdir, name)
      if os.path.isdir(target):
        shutil.rmtree(target)
      elif os.path.exists(target):
        os.remove(target)
  os.makedirs(workdir, exist_ok=True)
  if os.path.exists(path):
    with open(path) as f:
      if json.load(f) != setup:
        raise WorkdirConflict(
            f'{workdir} holds runs of a different setup ({path}); use another '
            '--workdir, or pass --fresh to start over in this one')
  elif os.path.exists(os.path.join(workdir, 'runs.json')):
    raise WorkdirConflict(f'{workdir} holds runs of an unknown setup (no '
                          f'{path}); pass --fresh to start over')
  else:
    atomic_files.write_json(path, setup)


def _stream(config, data, key):
  if config.stream == 'permuted_mnist':
    return streams.permuted(data, key, config.num_tasks,
                                 config.train_per_task)
  # Split CIFAR-100: 5 classes per task (2,500 training images each).
  return streams.split(data, config.classes_per_task,
                            config.num_tasks)


def run_continual(config: ml_collections.ConfigDict, workdir: str,
                  log: Callable[[str], None] = print,
                  fresh: bool = False) -> dict:
  seeds = [int(s) for s in _floats(config.seeds, 'seeds')]
  settings = grid(config)
  check_workdir(config, workdir, fresh)
  runs_path = os.path.join(workdir, 'runs.json')
  runs = {}
  if os.path.exists(runs_path):
    with open(runs_path) as f:
      runs = json.load(f)
  if config.stream not in STREAMS:
    raise ValueError(f'config.stream {config.stream!r}; known: {STREAMS}')
  if config.stream == 'permuted_mnist':
    data = streams.unit_pixels(datasets.load_dataset(
        'mnist', data_dir=config.data_dir))
  else:  # CIFAR-100 comes through tfds only.
    data = datasets.load_dataset('cifar100', source='tfds',
                                 tfds_data_dir=config.tfds_data_dir)
  model = models.make_model(config.model, data.num_classes, data.image_shape,
                            inits.kernel_initializer(config.init))
  for field, value in settings:
    for seed in seeds:
      name = f'{field}={value:g},seed={seed}'
      if name in runs:
        continue
      learner = ml_collections.ConfigDict(config.learner.to_dict())
      learner[field] = value
      k_stream, k_learner = jax.random.split(jax.random.key(seed))
      stream = _stream(config, data, k_stream)
      try:
        if learner.method == 'icarl':
          R = icarl.run_stream(learner, stream, model, k_learner)
        else:
          R = learners.run_stream(learner, stream, model, k_learner,
                                   _memory_fn(config, model, seed, workdir))
      except FloatingPointError as e:
        # A setting of the grid that diverges (e.g. a large EWC lambda at
        # lr 0.1) is recorded as such; the rest of the grid goes on.
        runs[name] = {'setting': {field: value}, 'seed': seed,
                      'diverged': str(e)}
        log(f'{name}: diverged ({e})')
      else:
        runs[name] = {'setting': {field: value}, 'seed': seed,
                      'final_accuracy': float(R[-1].mean()),
                      'accuracy_matrix': R.tolist()}
        log(f'{name}: final average accuracy {R[-1].mean():.4f}')
      atomic_files.write_json(runs_path, runs, indent=None)
  summary = []
  for field, value in settings:
    done = [runs[f'{field}={value:g},seed={s}'] for s in seeds]
    if any('diverged' in r for r in done):
      continue
    accs = [r['final_accuracy'] for r in done]
    summary.append({'setting': {field: value}, 'mean': float(np.mean(accs)),
                    'std': float(np.std(accs)), 'n_seeds': len(accs)})
  if not summary:
    raise FloatingPointError(f'every setting diverged; see {runs_path}')
  best = max(summary, key=lambda r: r['mean'])
  (field, value), = best['setting'].items()
  results = {
      'final_accuracy': {k: best[k] for k in ('mean', 'std', 'n_seeds')},
      'best_setting': best['setting'],
      'grid': summary,
      'accuracy_matrices': [runs[f'{field}={value:g},seed={s}']
                            ['accuracy_matrix'] for s in seeds],
      'config': json.loads(config.to_json()),
  }
  atomic_files.write_json(os.path.join(workdir, 'results.json'), results)
  return results
