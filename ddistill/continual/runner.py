"""A continual-learning experiment: every seed x hyperparameter, best reported.

`run_continual(config, workdir)` writes to the workdir:
  runs.json     every finished (hyperparameter, seed) run with its accuracy
                matrix; a rerun skips them (resume);
  memories/     distilled memories, one .npz per (seed, task), reused across
                GEM margins and reruns;
  results.json  the best hyperparameter's final average accuracy, mean ± std
                over seeds, and its accuracy matrices;
  setup.json    the config: a rerun that changes only its grid fields (more
                seeds or margins) adds runs, one with another setup is
                refused.
"""

import functools
import json
import os
from typing import Callable, Optional

import jax
import ml_collections
import numpy as np

from ddistill import config_checks
from ddistill import errors
from ddistill.continual import learners
from ddistill.data import datasets
from ddistill import export
from ddistill.continual import icarl
from ddistill import inits
from ddistill import models
from ddistill.continual import streams
from ddistill import workdir as workdir_lib


METHODS = learners.METHODS + ('icarl',)  # icarl lives in ddistill/continual/icarl.py.


def grid(config: ml_collections.ConfigDict) -> list[tuple[str, float]]:
  """The (learner field, value) settings the method is tried with."""
  method = config.learner.method
  if method == 'gem':
    return [('gem_margin', v) for v in workdir_lib.numbers(
        config.gem_margins, 'gem_margins')]
  if method == 'ewc':
    return [('ewc_lambda', v) for v in workdir_lib.numbers(
        config.ewc_lambdas, 'ewc_lambdas')]
  if method == 'icarl':
    return [('icarl_reg', v) for v in workdir_lib.numbers(
        config.icarl_regs, 'icarl_regs')]
  if method == 'sgd':
    return [('lr', config.learner.lr)]
  raise ValueError(
      f'unknown config.learner.method {method!r}; known: {METHODS}')


def _memory_fn(config, model, num_classes: int, seed: int, key: jax.Array,
               workdir: str) -> Optional[Callable]:
  """Distilled memories, cached on disk per (seed, task); None for real.
  key: the seed's memory stream, apart from its stream's and learner's."""
  if config.learner.memory == 'real':
    return None
  if config.learner.memory != 'distilled':
    raise ValueError(f"config.learner.memory {config.learner.memory!r}; use "
                     "'real' or 'distilled'")
  folder = os.path.join(workdir, 'memories')
  os.makedirs(folder, exist_ok=True)

  def make(t, task):
    path = os.path.join(folder, f'seed{seed}_task{t}.npz')
    if os.path.exists(path):
      d = export.load_distilled(path)
      return d.images[0], d.labels[0]
    x, y, _ = learners.distilled_memory(task, jax.random.fold_in(key, t),
                                         model, config.learner.distill,
                                         num_classes)
    export.save_distilled(path, export.DistilledSet(
        x[None], y[None], np.zeros(1, np.float32), np.zeros(1), np.ones(1),
        1))
    return x, y

  return make


STREAMS = ('permuted_mnist', 'split_cifar100')
# Config fields that only list runs; changing them keeps the finished ones.
GRID_FIELDS = ('seeds', 'gem_margins', 'ewc_lambdas', 'icarl_regs')
# Fields that change how memories are computed, not what (the same gradient
# up to rounding): cached memories are reused across them, and setups saved
# before they existed still match.
HOW_NOT_WHAT = {'learner.distill': ('real_chunk',)}
# What a run writes in its workdir; --fresh deletes it.
OUTPUTS = ('runs.json', 'results.json', 'memories')


def _setup(config: dict) -> dict:
  """A config (JSON) without its grid fields or HOW_NOT_WHAT."""
  setup = {k: v for k, v in config.items() if k not in GRID_FIELDS}
  return workdir_lib.without(setup, HOW_NOT_WHAT)


def check_workdir(config: ml_collections.ConfigDict, workdir: str,
                  fresh: bool = False) -> None:
  """Refuses to mix runs or cached memories of different setups."""
  workdir_lib.guard(workdir, config, fresh, saved_as='setup.json',
                    outputs=OUTPUTS, compare=_setup, owned=('runs.json',))


def _stream(config, data, key):
  if config.stream == 'permuted_mnist':
    return streams.permuted(data, key, config.num_tasks,
                            config.train_per_task)
  # Split CIFAR-100: 5 classes per task (2,500 training images each).
  return streams.split(data, config.classes_per_task, config.num_tasks)


def _load(config: ml_collections.ConfigDict) -> datasets.Dataset:
  if config.stream == 'permuted_mnist':
    return streams.unit_pixels(datasets.load_dataset(
        'mnist', data_dir=config.data.data_dir))
  # CIFAR-100 comes through tfds only.
  return datasets.load_dataset('cifar100', source='tfds',
                               tfds_data_dir=config.data.tfds_data_dir)


def run_continual(config: ml_collections.ConfigDict, workdir: str,
                  log: Callable[[str], None] = print,
                  fresh: bool = False) -> dict:
  """Runs every (setting, seed) of the grid, skipping those in runs.json;
  returns (and writes as results.json) the best setting's results."""
  config_checks.validate(config, 'continual', methods=METHODS,
                         streams=STREAMS)
  seeds = workdir_lib.numbers(config.seeds, 'seeds', int)
  settings = grid(config)
  check_workdir(config, workdir, fresh)
  data = _load(config)
  model = models.make_model(config.model.name, data.num_classes,
                            data.image_shape,
                            inits.kernel_initializer(config.model.init))
  runs_path = os.path.join(workdir, 'runs.json')
  runs = {}
  for field, value in settings:
    for seed in seeds:
      name = f'{field}={value:g},seed={seed}'
      one_run = functools.partial(_run, config, data, model, field, value,
                                  seed, workdir, lambda m: log(f'{name}: {m}'))
      runs[name] = workdir_lib.cached_json(runs_path, one_run, key=name)
  results = _best(config, settings, seeds, runs, runs_path)
  workdir_lib.write_json(os.path.join(workdir, 'results.json'), results)
  return results


def _run(config, data, model, field: str, value: float, seed: int,
         workdir: str, log: Callable[[str], None]) -> dict:
  """One learner with `field` = `value` on the stream of `seed`."""
  learner = ml_collections.ConfigDict(config.learner.to_dict())
  learner[field] = value
  k_stream, k_learner, k_memory = jax.random.split(jax.random.key(seed), 3)
  stream = _stream(config, data, k_stream)
  try:
    if learner.method == 'icarl':
      R = icarl.run_stream(learner, stream, model, k_learner)
    else:
      R = learners.run_stream(learner, stream, model, k_learner,
                              _memory_fn(config, model, data.num_classes,
                                         seed, k_memory, workdir))
  except errors.Diverged as e:
    # A setting of the grid that diverges (e.g. a large EWC lambda at
    # lr 0.1) is recorded as such; the rest of the grid goes on.
    log(f'diverged ({e})')
    return {'setting': {field: value}, 'seed': seed, 'diverged': str(e)}
  log(f'final average accuracy {R[-1].mean():.4f}')
  return {'setting': {field: value}, 'seed': seed,
          'final_accuracy': float(R[-1].mean()),
          'accuracy_matrix': R.tolist()}


def _best(config, settings, seeds, runs: dict, runs_path: str) -> dict:
  """The results of the setting with the best mean over seeds."""
  summary = []
  for field, value in settings:
    done = [runs[f'{field}={value:g},seed={s}'] for s in seeds]
    if any('diverged' in r for r in done):
      continue
    accs = [r['final_accuracy'] for r in done]
    summary.append({'setting': {field: value}, 'mean': float(np.mean(accs)),
                    'std': float(np.std(accs)), 'n_seeds': len(accs)})
  if not summary:
    raise errors.Diverged(f'every setting diverged; see {runs_path}')
  best = max(summary, key=lambda r: r['mean'])
  (field, value), = best['setting'].items()
  return {
      'final_accuracy': {k: best[k] for k in ('mean', 'std', 'n_seeds')},
      'best_setting': best['setting'],
      'grid': summary,
      'accuracy_matrices': [runs[f'{field}={value:g},seed={s}']
                            ['accuracy_matrix'] for s in seeds],
      'config': json.loads(config.to_json()),
  }
