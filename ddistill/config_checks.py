"""Validates a run's config before any data is read or anything computed.

Every error names the field, the value and what is allowed.
"""

import ml_collections

from ddistill import distill, inits, models, real_batches
from ddistill.models import layers
from ddistill import data
from ddistill.errors import ConfigError


INIT_MODES = ('fixed', 'random', 'fixed_pretrained', 'random_pretrained')



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
  ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  if ok:
    ok = (value > low if low_open else value >= low) and value <= high
  if not ok:
    bracket = '(' if low_open else '['
    raise ConfigError(f'config.{field} = {value!r} must be a number in '
                      f'{bracket}{low}, {high}]')
  return value


def _unit_interval(config, field):
  """A number in [0, 1): Adam's betas (1 divides by zero at iteration 1)."""
  value = _get(config, field)
  if (isinstance(value, bool) or not isinstance(value, (int, float)) or
      not 0 <= value < 1):
    raise ConfigError(f'config.{field} = {value!r} must be a number in [0, 1)')
  return value


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first bad field."""
  _int(config, 'seed', 0)
  name = _choice(config, 'data.name', sorted(data.SOURCES))
  source = _choice(config, 'data.source', ('auto', 'local', 'tfds'))
  if not data.SOURCES[name].local and source == 'local':
    raise ConfigError(f'config.data.source = {source!r}: {name} loads '
                      'through tfds only; use "auto" or "tfds"')
  _choice(config, 'data.augment', real_batches.AUGMENTS)
  _choice(config, 'data.sampling', real_batches.SAMPLINGS)
  model = _choice(config, 'model.name', sorted(models.MODELS))
  _choice(config, 'model.init', inits.INITS)
  _float(config, 'model.init_gain', 0.0)
  _choice(config, 'model.conv_impl', ('auto',) + layers.CONV_IMPLS)
  _choice(config, 'model.first_order_conv_impl', ('auto',) + layers.CONV_IMPLS)

  mode = _choice(config, 'distill.init_mode', INIT_MODES)
  if 'pretrained' in mode and not _get(config, 'distill.pretrained_dir'):
    raise ConfigError(f'config.distill.init_mode = {mode!r} needs '
                      'config.distill.pretrained_dir (a pool written by '
                      'experiments.pretrain)')
  _int(config, 'distill.num_inits', 1)
  _int(config, 'distill.steps', 1)
  _int(config, 'distill.epochs', 1)
  _int(config, 'distill.images_per_class', 1)
  _choice(config, 'distill.image_init', ('normal', 'real'))
  _float(config, 'distill.lr_init', 0.0)
  _choice(config, 'distill.batching', ('auto',) + distill.BATCHINGS)
  _choice(config, 'distill.remat', (True, False))

  _float(config, 'optim.lr', 0.0)
  _unit_interval(config, 'optim.b1')
  _int(config, 'optim.decay_every', 1)
  _float(config, 'optim.decay_factor', 0.0, 1.0)

  _int(config, 'num_iterations', 0)
  _int(config, 'real_batch_size', 1)
  _int(config, 'log_every', 1)
  _int(config, 'eval_every', 0)
  _int(config, 'checkpoint_every', 1)
  _int(config, 'checkpoints_to_keep', 1)
  _int(config, 'eval.num_models', 1)
  _int(config, 'eval.num_models_during', 1)

  sizes = models.MODELS[model].sizes
  _int(config, 'data.image_size', 1)
  height, width = data.SOURCES[name].image_size(config.data)
  if _choice(config, 'data.as_mnist', (True, False)):
    height = width = 28
    box = _get(config, 'data.digit_box')
    if not isinstance(box, int) or not 0 <= box <= 28:
      raise ConfigError(f'config.data.digit_box = {box!r}: the side digits '
                        'fill in 28x28, 1 to 28 (0: the dataset\'s own)')
  if sizes is not None and (height != width or height not in sizes):
    raise ConfigError(
        f'config.model.name = {model!r} takes images of size {sizes}, but '
        f'config.data.name = {name!r} has {height}x{width} images')
  smallest = models.MODELS[model].min_size
  if min(height, width) < smallest:
    raise ConfigError(
        f'config.model.name = {model!r} takes images of at least {smallest}'
        f'x{smallest}, but config.data has {height}x{width} images')
