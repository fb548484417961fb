"""Validates an experiment's config before any data is read or any compute.

`validate(config, kind)` checks the config of one kind of experiment (KINDS):
a distillation run ('distill', the default), a paper table or figure, a pool
of pretrained nets, the linear case or a continual-learning run. Every error
is a ConfigError naming the field, its value and what is allowed.

Some allowed names belong to ddistill.paper or ddistill.continual, which the
core never imports: their runners pass them in (see `validate`).
"""

import math
from typing import Collection, Mapping, Optional

import ml_collections

from ddistill import augment
from ddistill import data
from ddistill import distill
from ddistill import inits
from ddistill import models
from ddistill import real_batches
from ddistill import workdir
from ddistill.data import transfer
from ddistill.errors import ConfigError
from ddistill.models import layers


INIT_MODES = ('fixed', 'random', 'fixed_pretrained', 'random_pretrained')
# How an ImageNet AlexNet pool's new classifier starts (models.alexnet).
NEW_CLASSIFIERS = ('official', 'random')


def _get(config: ml_collections.ConfigDict, field: str):
  node = config
  for part in field.split('.'):
    if part not in node:
      raise ConfigError(f'config.{field} is missing')
    node = node[part]
  return node


def _choice(config, field, allowed):
  value = _get(config, field)
  if value not in allowed:
    raise ConfigError(f'config.{field} = {value!r} is not one of '
                      f'{list(allowed)}')
  return value


def _int(config, field, minimum):
  value = _get(config, field)
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise ConfigError(f'config.{field} = {value!r} must be an integer '
                      f'>= {minimum}')
  return value


def _float(config, field, low, high=float('inf'), low_open=True):
  value = _get(config, field)
  ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and
        math.isfinite(value))
  if ok:
    ok = (value > low if low_open else value >= low) and value <= high
  if not ok:
    opening = '(' if low_open else '['
    closing = ')' if high == math.inf else ']'
    raise ConfigError(f'config.{field} = {value!r} must be a finite number '
                      f'in {opening}{low}, {high}{closing}')
  return value


def _unit_interval(config, field):
  """A number in [0, 1): Adam's betas (1 divides by zero at iteration 1)."""
  value = _get(config, field)
  if (isinstance(value, bool) or not isinstance(value, (int, float)) or
      not 0 <= value < 1):
    raise ConfigError(f'config.{field} = {value!r} must be a number in [0, 1)')
  return value


def _text(config, field):
  value = _get(config, field)
  if not isinstance(value, str):
    raise ConfigError(f'config.{field} = {value!r} must be a string')
  return value


def _names(config, field, allowed: Collection[str]) -> list[str]:
  """A comma-separated list of names, each one of `allowed`."""
  value = _text(config, field)
  names = workdir.names(value)
  unknown = [name for name in names if name not in allowed]
  if unknown or not names:
    raise ConfigError(f'config.{field} = {value!r}: unknown {unknown}; '
                      f'known: {sorted(allowed)} (comma-separated)')
  return names


def _numbers(config, field, cast, low, low_open=False) -> list:
  """A comma-separated list of numbers, each above `low`."""
  value = _text(config, field)
  numbers = workdir.numbers(value, field, cast)
  if any(n <= low if low_open else n < low for n in numbers):
    relation = '>' if low_open else '>='
    raise ConfigError(f'config.{field} = {value!r}: every value must be '
                      f'{relation} {low}')
  return numbers


def _data(config, at: str, batches: bool = True) -> None:
  """The `data` block: where and how a dataset is read; batches: with the
  fields of distillation's real batches and validation split."""
  name = _choice(config, at + 'data.name', sorted(data.SOURCES))
  source = _choice(config, at + 'data.source', ('auto', 'local', 'tfds'))
  if not data.SOURCES[name].local and source == 'local':
    raise ConfigError(f'config.{at}data.source = {source!r}: {name} loads '
                      'through tfds only; use "auto" or "tfds"')
  for field in ('data_dir', 'cache_dir', 'tfds_data_dir'):
    _text(config, f'{at}data.{field}')
  if batches:
    _choice(config, at + 'data.augment', real_batches.AUGMENTS)
    _choice(config, at + 'data.sampling', real_batches.SAMPLINGS)
    _int(config, at + 'data.val_size', 0)
  _int(config, at + 'data.image_size', 1)
  _float(config, at + 'data.zca', 0.0, low_open=False)
  _choice(config, at + 'data.as_mnist', (True, False))
  box = _get(config, at + 'data.digit_box')
  if isinstance(box, bool) or not isinstance(box, int) or not 0 <= box <= 28:
    raise ConfigError(f'config.{at}data.digit_box = {box!r}: the side digits '
                      'fill in 28x28, 1 to 28 (0: the dataset\'s own)')


def _model(config, at: str) -> None:
  """The `model` block: a registered network and its initialization."""
  _choice(config, at + 'model.name', sorted(models.MODELS))
  _choice(config, at + 'model.init', inits.INITS)
  _float(config, at + 'model.init_gain', 0.0)
  _choice(config, at + 'model.conv_impl', ('auto',) + layers.CONV_IMPLS)
  _choice(config, at + 'model.first_order_conv_impl',
          ('auto',) + layers.CONV_IMPLS)


def _image_fits(config, at: str, name: str, named: str) -> None:
  """The model takes dataset `name`'s images as the `data` block reads them.

  named: how the message names the dataset (its field, or a table row).
  """
  dc = _get(config, at + 'data')
  height, width = data.SOURCES[name].image_size(dc)
  if dc.as_mnist:
    height = width = 28
  _size_fits(config, at, (height, width), named)


def _size_fits(config, at: str, image_size: tuple[int, int],
               named: str) -> None:
  """The model takes images of `image_size`; named: whose images."""
  model = _get(config, at + 'model.name')
  height, width = image_size
  sizes = models.MODELS[model].sizes
  if sizes is not None and (height != width or height not in sizes):
    raise ConfigError(
        f'config.{at}model.name = {model!r} takes images of size {sizes}, '
        f'but {named} has {height}x{width} images')
  smallest = models.MODELS[model].min_size
  if min(height, width) < smallest:
    raise ConfigError(
        f'config.{at}model.name = {model!r} takes images of at least '
        f'{smallest}x{smallest}, but {named} has {height}x{width} images')


def _optim(config, at: str) -> None:
  """An `optim` block: Adam with a step decay (distill.make_optimizer)."""
  _float(config, at + 'optim.lr', 0.0)
  _unit_interval(config, at + 'optim.b1')
  _int(config, at + 'optim.decay_every', 1)
  _float(config, at + 'optim.decay_factor', 0.0, 1.0)


def _run(config, at: str = '', pool_filled_in: bool = False,
         image_size: Optional[tuple[int, int]] = None) -> None:
  """A distillation run (configs/default.py), at `at` in `config`.

  pool_filled_in: the runner sets distill.pretrained_dir (Tables 2, 3).
  image_size: (height, width) of the images the run gets in place of
  config.data's (`api.distill_arrays`).
  """
  _int(config, at + 'seed', 0)
  _data(config, at)
  _model(config, at)
  name = _get(config, at + 'data.name')
  if image_size is None:
    _image_fits(config, at, name, f'config.{at}data.name = {name!r}')
  else:
    _size_fits(config, at, image_size, 'x (the arrays)')

  mode = _choice(config, at + 'distill.init_mode', INIT_MODES)
  if ('pretrained' in mode and not pool_filled_in and
      not _text(config, at + 'distill.pretrained_dir')):
    raise ConfigError(f'config.{at}distill.init_mode = {mode!r} needs '
                      f'config.{at}distill.pretrained_dir (a pool written by '
                      'experiments.pretrain)')
  _int(config, at + 'distill.num_inits', 1)
  steps = _int(config, at + 'distill.steps', 1)
  epochs = _int(config, at + 'distill.epochs', 1)
  _int(config, at + 'distill.images_per_class', 1)
  _choice(config, at + 'distill.image_init', ('normal', 'real'))
  _float(config, at + 'distill.lr_init', 0.0)
  _choice(config, at + 'distill.batching', ('auto',) + distill.BATCHINGS)
  _choice(config, at + 'distill.remat', (True, False))
  _int(config, at + 'distill.real_chunk', -1)
  _choice(config, at + 'distill.label_mode', distill.LABEL_MODES)
  _float(config, at + 'distill.label_init_scale', 0.0)
  window = _int(config, at + 'distill.truncate_window', 0)
  if window > steps * epochs:
    raise ConfigError(f'config.{at}distill.truncate_window = {window} exceeds '
                      f'the unroll of distill.steps * distill.epochs = '
                      f'{steps * epochs} steps (0 = differentiate all of them)')
  if _text(config, at + 'distill.dsa'):
    _names(config, at + 'distill.dsa', augment.TRANSFORMS)
  _float(config, at + 'distill.dsa_strength', 0.0, low_open=False)
  _choice(config, at + 'distill.dsa_mode', augment.MODES)

  _optim(config, at)
  _unit_interval(config, at + 'optim.ema_decay')
  _int(config, at + 'num_iterations', 0)
  _int(config, at + 'real_batch_size', 1)
  _int(config, at + 'log_every', 1)
  _int(config, at + 'eval_every', 0)
  _int(config, at + 'checkpoint_every', 1)
  _int(config, at + 'checkpoints_to_keep', 1)
  _int(config, at + 'eval.num_models', 1)
  _int(config, at + 'eval.num_models_during', 1)


def _baselines(config, knn_metrics: Collection[str] = ()) -> None:
  """The real-image baselines (configs/table1.py); KNN ones if knn_metrics."""
  _int(config, 'baselines.per_class', 1)
  _int(config, 'baselines.num_sets', 1)
  candidates = _int(config, 'baselines.num_candidates', 1)
  selected = _int(config, 'baselines.num_selected', 1)
  if selected > candidates:
    raise ConfigError(f'config.baselines.num_selected = {selected} exceeds '
                      f'config.baselines.num_candidates = {candidates}')
  _int(config, 'baselines.selection_images', 1)
  for field in ('selection_models', 'num_models'):  # Table 3 has neither.
    if field in config.baselines:
      _int(config, f'baselines.{field}', 1)
  _numbers(config, 'baselines.lrs', float, 0.0, low_open=True)
  if knn_metrics:
    _numbers(config, 'baselines.knn_ks', int, 1)
    _names(config, 'baselines.knn_metrics', knn_metrics)


def _pools_dir(config) -> None:
  """Tables 2 and 3 take each row's pool from pools_dir, for our run and
  the baselines alike: a pool of the run's own would test them apart."""
  if not _text(config, 'pools_dir'):
    raise ConfigError('config.pools_dir is empty: set it to the folder '
                      'holding the pools experiments.pretrain wrote, one '
                      '<pools_dir>/<name>/ each')
  if _text(config, 'run.distill.pretrained_dir'):
    raise ConfigError(
        f'config.run.distill.pretrained_dir = '
        f'{config.run.distill.pretrained_dir!r}: this table takes each '
        'row\'s pool from config.pools_dir (our run and the baselines '
        'alike); leave it empty and set config.pools_dir')


def _full_target(config) -> None:
  """Fine-tuning on the whole target set (Tables 2, 3)."""
  _int(config, 'full_target_epochs', 1)
  _float(config, 'full_target_lr', 0.0)
  _int(config, 'full_target_batch_size', 1)
  _int(config, 'full_target_models', 1)


def _table1(config, *, knn_metrics: Collection[str]) -> None:
  _int(config, 'seed', 0)
  # The config's dataset blocks are the rows it can run.
  blocks = [key for key, value in config.items()
            if isinstance(value, ml_collections.ConfigDict) and
            'step_counts' in value]
  for name in _names(config, 'datasets', blocks):
    _run(config, f'{name}.fixed.')
    _run(config, f'{name}.random.')
    _numbers(config, f'{name}.step_counts', int, 1)
  _baselines(config, knn_metrics)


def _table2(config, *,
            rows: Mapping[str, tuple[str, str]]) -> None:
  """rows: row -> (source, target), ddistill.paper.table2.ROWS."""
  _int(config, 'seed', 0)
  _pools_dir(config)
  _run(config, 'run.', pool_filled_in=True)
  for row in _names(config, 'rows', rows):
    _, target = rows[row]
    _image_fits(config, 'run.', target, f'row {row!r} (target {target!r})')
  _int(config, 'num_models', 1)
  _numbers(config, 'passes', int, 1)
  _int(config, 'target_epochs', 0)
  _int(config, 'target_decay_epochs', 0)
  _full_target(config)
  _baselines(config)


def _table3(config) -> None:
  _int(config, 'seed', 0)
  _pools_dir(config)
  _run(config, 'run.', pool_filled_in=True)
  for row in _names(config, 'rows', transfer.SPECS):
    _image_fits(config, 'run.', row, f'row {row!r}')
  _numbers(config, 'gd_steps', int, 1)
  _int(config, 'target_epochs', 0)
  _int(config, 'target_decay_epochs', 0)
  _full_target(config)
  _baselines(config)


def _figure3(config) -> None:
  _names(config, 'init_modes', ('fixed', 'random'))
  _run(config, 'run.')
  steps = _get(config, 'run.distill.steps')
  for n in _numbers(config, 'gd_steps', int, 1):
    if n % steps:  # Each point applies the steps for whole epochs.
      raise ConfigError(f'config.gd_steps = {config.gd_steps!r}: {n} GD steps '
                        'is not a multiple of config.run.distill.steps = '
                        f'{steps}')


def _pretrain(config) -> None:
  _int(config, 'seed', 0)
  _data(config, '', batches=False)
  _model(config, '')
  _choice(config, 'new_classifier', NEW_CLASSIFIERS)
  if _text(config, 'weights'):
    if config.model.name != 'alexnet':
      raise ConfigError(f'config.weights holds ImageNet AlexNet weights, but '
                        f'config.model.name = {config.model.name!r}')
    _choice(config, 'data.name', sorted(transfer.SPECS))
  name = _get(config, 'data.name')
  _image_fits(config, '', name, f'config.data.name = {name!r}')
  for field in ('num_train', 'num_heldout', 'epochs', 'batch_size',
                'nets_per_chunk'):
    _int(config, field, 1)
  _optim(config, '')


def _linear(config) -> None:
  _int(config, 'seed', 0)
  _int(config, 'num_points', 1)
  _int(config, 'dim', 1)
  _float(config, 'noise', 0.0, low_open=False)
  _numbers(config, 'num_distilled', int, 1)
  _int(config, 'num_iterations', 1)
  _int(config, 'inits_per_iteration', 1)
  _float(config, 'lr', 0.0)
  _int(config, 'num_heldout', 1)


def _continual(config, *, methods: Collection[str],
               streams: Collection[str]) -> None:
  """methods, streams: ddistill.continual.runner's METHODS and STREAMS."""
  _numbers(config, 'seeds', int, 0)
  _choice(config, 'stream', streams)
  _int(config, 'num_tasks', 1)
  _int(config, 'train_per_task', 1)
  _int(config, 'classes_per_task', 1)
  _text(config, 'data.data_dir')
  _text(config, 'data.tfds_data_dir')
  _choice(config, 'model.name', sorted(models.MODELS))
  _choice(config, 'model.init', inits.INITS)

  _choice(config, 'learner.method', methods)
  _choice(config, 'learner.memory', ('real', 'distilled'))
  _int(config, 'learner.memory_per_task', 1)
  _float(config, 'learner.lr', 0.0)
  _int(config, 'learner.batch_size', 1)
  _float(config, 'learner.gem_margin', 0.0, low_open=False)
  _float(config, 'learner.ewc_lambda', 0.0, low_open=False)
  _int(config, 'learner.ewc_samples', 1)
  _float(config, 'learner.icarl_reg', 0.0, low_open=False)
  for grid in ('gem_margins', 'ewc_lambdas', 'icarl_regs'):
    _numbers(config, grid, float, 0.0)

  d = 'learner.distill.'
  _int(config, d + 'images_per_class', 1)
  _int(config, d + 'gd_steps', 1)
  _float(config, d + 'lr_init', 0.0)
  _optim(config, d)
  _int(config, d + 'num_inits', 1)
  _int(config, d + 'batch_size', 1)
  _int(config, d + 'real_chunk', -1)
  _int(config, d + 'iterations', 1)


KINDS = {'distill': _run, 'table1': _table1, 'table2': _table2,
         'table3': _table3, 'figure3': _figure3, 'pretrain': _pretrain,
         'linear': _linear, 'continual': _continual}


def validate(config: ml_collections.ConfigDict, kind: str = 'distill',
             **names) -> None:
  """Raises ConfigError naming the first bad field of a `kind` config.

  kind: one of KINDS: 'distill' (configs/default.py and the dataset configs),
  or the experiment its config is named for (configs/<kind>.py).
  names: the allowed names the kind's own package owns, passed by its runner:
  table1 `knn_metrics` (ddistill.paper.baselines.KNN_METRICS); table2 `rows`
  (ddistill.paper.table2.ROWS); continual `methods` and `streams`
  (ddistill.continual.runner.METHODS, STREAMS).
  """
  if kind not in KINDS:
    raise ValueError(f'unknown config kind {kind!r}; known: {sorted(KINDS)}')
  KINDS[kind](config, **names)
