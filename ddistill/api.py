"""The public API: load a distilled set, train a network on it, distill arrays.

  d = ddistill.load_distilled('runs/mnist/distilled.npz')
  params = ddistill.train_on(model, params, d)
  d = ddistill.distill_arrays(x_NxHxWxC, y_N, num_classes, config)

docs/how_to.md shows each in a snippet that tests/test_docs_snippets.py runs.
"""

import functools
from typing import Any, Callable, Optional, Union

from absl import logging
import flax.linen as nn
import jax
import ml_collections
import numpy as np

from ddistill import config_checks
from ddistill import distill
from ddistill import export
from ddistill import models
from ddistill import sharding
from ddistill import train
from ddistill.errors import ConfigError, DataError, Diverged
from ddistill.export import DistilledSet


@functools.partial(jax.jit, static_argnums=0)
def _train(apply_fn, params, images_SxNxHxWxC, targets, lrs_T):
  return distill.train_on_distilled(apply_fn, params, images_SxNxHxWxC,
                                    targets, lrs_T, remat=False)


def train_on(model: Union[nn.Module, Callable[[Any, jax.Array], jax.Array]],
             params: Any, distilled: DistilledSet) -> Any:
  """`params` trained on the set as it was distilled: plain GD, step t on the
  images of step t % steps with lr `lrs[t]`, for every t < len(lrs).

  model: a flax Module (params are its 'params' collection) or any
  `apply_fn(params, x_BxHxWxC) -> logits`. A set distilled for a fixed init
  trains that init; one distilled for random inits trains fresh draws of the
  same architecture and init distribution.
  """
  apply_fn = models.Apply(model) if isinstance(model, nn.Module) else model
  if not isinstance(distilled, DistilledSet):
    raise DataError('distilled must be a DistilledSet (ddistill.'
                    f'load_distilled), not a {type(distilled).__name__}')
  images = np.asarray(distilled.images)
  targets = np.asarray(distilled.targets)
  try:  # Shapes only: nothing is computed.
    logits = jax.eval_shape(apply_fn, params, images[0])
  except Exception as e:  # pylint: disable=broad-except
    # Whatever the model's layers say about params or images that do not fit.
    reason = (str(e).strip().splitlines() or [''])[0]
    raise ConfigError(f'the model on params and one step\'s images '
                      f'{images.shape[1:]} failed ({type(e).__name__}: '
                      f'{reason})') from e
  if getattr(logits, 'ndim', 0) != 2:
    raise ConfigError(f'the model must give logits [n, classes], not '
                      f'{getattr(logits, "shape", type(logits).__name__)}')
  classes = logits.shape[-1]
  if (targets.ndim == 3 and targets.shape[-1] != classes) or (
      targets.ndim == 2 and targets.max() >= classes):
    raise ConfigError(f'the model gives {classes} logits per image; the set '
                      f'has {distilled.soft_labels.shape[-1]} classes')
  return _train(apply_fn, params, images, targets, np.asarray(distilled.lrs))


def _check_arrays(x_NxHxWxC: np.ndarray, y_N: np.ndarray,
                  num_classes: int) -> None:
  if (isinstance(num_classes, bool) or
      not isinstance(num_classes, (int, np.integer)) or num_classes < 2):
    raise ConfigError(f'num_classes = {num_classes!r} must be an integer >= 2')
  if x_NxHxWxC.ndim != 4 or not len(x_NxHxWxC):
    raise DataError(f'x must be images [N, H, W, C], N >= 1, not of shape '
                    f'{x_NxHxWxC.shape}')
  if not np.all(np.isfinite(x_NxHxWxC)):
    raise DataError('x holds NaN or infinity')
  if y_N.shape != x_NxHxWxC.shape[:1]:
    raise DataError(f'y must be labels [N] = [{len(x_NxHxWxC)}], not of '
                    f'shape {y_N.shape}')
  if not np.issubdtype(y_N.dtype, np.integer):
    raise DataError(f'y must be integer class labels, not {y_N.dtype}')
  missing = sorted(set(range(num_classes)) - set(y_N.tolist()))
  if missing or y_N.min() < 0 or y_N.max() >= num_classes:
    # Every distilled step holds every class, started from real images of it.
    raise DataError(f'y must hold every class 0..{num_classes - 1} and no '
                    f'other; missing {missing}, range [{y_N.min()}, '
                    f'{y_N.max()}]')


def distill_arrays(x_NxHxWxC: np.ndarray, y_N: np.ndarray, num_classes: int,
                   config: ml_collections.ConfigDict, *,
                   mean: Optional[np.ndarray] = None,
                   std: Optional[np.ndarray] = None) -> DistilledSet:
  """Distills the arrays as `config` says, and returns the distilled set.

  config: a run config (configs/default.py); the arrays take the place of
  its dataset (of config.data only `augment` and `sampling` are read). It
  runs config.num_iterations outer iterations in memory: no workdir,
  checkpoints or evaluation (`train.train_and_evaluate` does those). Given
  the same config and the dataset's training arrays, it learns the same set
  as `train_and_evaluate`.
  x_NxHxWxC: normalized images; y_N: their classes in [0, num_classes).
  mean, std: [C] (or one for all channels), kept in the set to draw it
  (default 0 and 1: x as given).
  """
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError('config must be an ml_collections.ConfigDict (configs/'
                      f'default.py), not a {type(config).__name__}')
  x_NxHxWxC, y_N = np.asarray(x_NxHxWxC, np.float32), np.asarray(y_N)
  _check_arrays(x_NxHxWxC, y_N, num_classes)
  channels = x_NxHxWxC.shape[-1]
  mean = np.zeros(channels) if mean is None else np.asarray(mean)
  std = np.ones(channels) if std is None else np.asarray(std)
  export.check_normalization(mean, std, channels)
  config_checks.validate(config, image_size=x_NxHxWxC.shape[1:3])
  if config.data.val_size or config.data.zca:
    raise ConfigError('distill_arrays takes the arrays as given: set '
                      'config.data.val_size and config.data.zca to 0 (hold '
                      'out and whiten the arrays yourself: datasets.hold_out, '
                      'datasets.zca_whiten)')
  program = train.build_program(config, num_classes, x_NxHxWxC.shape[1:],
                                num_examples=len(y_N))
  rep = sharding.replicated(program.mesh)
  train_x, train_y = sharding.put((x_NxHxWxC, y_N.astype(np.int32)), rep)
  state = train.initial_state(config, program, train_x, train_y)
  keys = train.run_keys(config.seed)
  for it in range(config.num_iterations):
    # The same keys and step as train_and_evaluate, so both learn one set.
    state, metrics = train.outer_iteration(program, state, (train_x, train_y),
                                           keys, it, rep)
    if (it + 1) % config.log_every == 0 or it + 1 == config.num_iterations:
      loss = float(sharding.to_host(metrics['loss']))
      if not np.isfinite(loss):
        raise Diverged(
            f'non-finite outer loss {loss} in iteration {it + 1} (checked '
            f'every {config.log_every} iterations)')
      logging.info('Iteration %d: outer loss %.4f', it + 1, loss)
  return train.distilled_of(config, program, state, mean, std)
