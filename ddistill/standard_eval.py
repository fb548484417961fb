"""The field's standard evaluation of a distilled set, on any architecture.

The paper's protocol (evaluate.evaluate_set) replays the distilled steps in
order with their learned lrs. The protocol later work reports (the DC/DSA
code of Zhao et al.) ignores both: every image of every step goes into one
small training set, with its label (or soft label), and fresh networks of
several architectures train on it with minibatch SGD for E epochs, then are
tested on the real test set. `Recipe` holds that training's settings.

Each network trains as one jitted program (`lax.scan` over epochs and
minibatches); the networks are split over the devices and, within each,
trained in vmapped chunks (one at a time on CPU, as in evaluate.py).
"""

import dataclasses
import functools
import os
from typing import Any, Optional, Sequence
import zlib

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P
import ml_collections
import numpy as np
import optax

from ddistill import augment
from ddistill import config_checks
from ddistill import distill
from ddistill import evaluate
from ddistill import export
from ddistill import inits
from ddistill import models
from ddistill import sharding
from ddistill import train
from ddistill import workdir
from ddistill.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Recipe:
  """How each network trains: SGD with momentum and weight decay (as torch's
  SGD), lr multiplied by `lr_decay` halfway, the momentum restarted there.

  The defaults are the DC/DSA code's evaluate_synset (which drops the lr by
  10x at epoch E / 2 + 1 and runs E + 1 epochs). Hashable: jit takes it as
  a static argument.
  """
  epochs: int = 300
  batch_size: int = 256
  lr: float = 0.01
  lr_decay: float = 0.1
  momentum: float = 0.9
  weight_decay: float = 5e-4
  dsa: Optional[augment.DSA] = None  # Drawn per image and minibatch.

  def __post_init__(self):
    for field in ('epochs', 'batch_size'):
      if getattr(self, field) < 1:
        raise ConfigError(f'{field} = {getattr(self, field)} must be >= 1')
    for field in ('lr', 'lr_decay', 'momentum', 'weight_decay'):
      if not getattr(self, field) >= 0:
        raise ConfigError(f'{field} = {getattr(self, field)} must be >= 0')


def _minibatches(key: jax.Array, n: int, batch: int):
  """An epoch's shuffled indices [nb, batch] and weights (0 for padding).

  The last minibatch holds the n % batch left over, as torch's DataLoader
  gives it; here it is padded to full size with zero-weight entries, so
  every minibatch has one shape under jit.
  """
  per_epoch = -(-n // batch)
  pad = per_epoch * batch - n
  order = jnp.concatenate([jax.random.permutation(key, n),
                           jnp.zeros(pad, jnp.int32)])
  weights = jnp.concatenate([jnp.ones(n), jnp.zeros(pad)])
  return order.reshape(per_epoch, batch), weights.reshape(per_epoch, batch)


def train_network(apply_fn: distill.ApplyFn, recipe: Recipe,
                  params: distill.Params, key: jax.Array,
                  x_NxHxWxC: jax.Array,
                  targets_NxK: jax.Array) -> distill.Params:
  """One network trained on (x, targets) as `recipe` says.

  targets_NxK: a distribution over the K classes per image (one-hot for
  hard labels); the loss is the cross-entropy against it.
  """
  n = x_NxHxWxC.shape[0]
  batch = min(recipe.batch_size, n)

  def loss_fn(params, x_BxHxWxC, targets_BxK, weights_B):
    losses_B = optax.softmax_cross_entropy(apply_fn(params, x_BxHxWxC),
                                           targets_BxK)
    return jnp.sum(weights_B * losses_B) / jnp.sum(weights_B)

  def sgd_step(lr, carry, batch_inputs):
    params, velocity = carry
    idx_B, weights_B, k_augment = batch_inputs
    x = x_NxHxWxC[idx_B]
    if recipe.dsa is not None:
      x = recipe.dsa(k_augment, x, per_image=True)
    grads = jax.grad(loss_fn)(params, x, targets_NxK[idx_B], weights_B)
    # torch's SGD: decay added to the gradient, then the momentum buffer.
    grads = jax.tree.map(lambda g, p: g + recipe.weight_decay * p, grads,
                         params)
    velocity = jax.tree.map(lambda v, g: recipe.momentum * v + g, velocity,
                            grads)
    params = jax.tree.map(lambda p, v: p - lr * v, params, velocity)
    return (params, velocity), None

  def epoch(lr, carry, e):
    k_shuffle, k_augment = jax.random.split(jax.random.fold_in(key, e))
    idx, weights = _minibatches(k_shuffle, n, batch)
    k_augment = jax.random.split(k_augment, idx.shape[0])
    carry, _ = jax.lax.scan(functools.partial(sgd_step, lr), carry,
                            (idx, weights, k_augment))
    return carry, None

  def phase(params, first: int, count: int, lr: float):
    velocity = jax.tree.map(jnp.zeros_like, params)
    (params, _), _ = jax.lax.scan(functools.partial(epoch, lr),
                                  (params, velocity),
                                  first + jnp.arange(count))
    return params

  half = recipe.epochs // 2
  params = phase(params, 0, half, recipe.lr)
  return phase(params, half, recipe.epochs - half,
               recipe.lr * recipe.lr_decay)


@functools.lru_cache(maxsize=None)
def _program(apply_fn: distill.ApplyFn, recipe: Recipe, mesh: Mesh,
             per_batch: Optional[int]):
  """Jitted (params0_M, key_data_M, x, targets) -> trained params_M."""

  def train_shard(params0_M, key_data_M, x_NxHxWxC, targets_NxK):
    def one(inputs):
      params0, key_data = inputs
      return train_network(apply_fn, recipe, params0,
                           jax.random.wrap_key_data(key_data), x_NxHxWxC,
                           targets_NxK)
    return jax.lax.map(one, (params0_M, key_data_M), batch_size=per_batch)

  models_spec, rep = P(sharding.AXIS), P()
  return jax.jit(jax.shard_map(
      train_shard, mesh=mesh, in_specs=(models_spec, models_spec, rep, rep),
      out_specs=models_spec))


def train_and_test(apply_fn: distill.ApplyFn, recipe: Recipe,
                   params0_M: distill.Params, key: jax.Array,
                   x_NxHxWxC: np.ndarray, targets_NxK: np.ndarray,
                   test_x: np.ndarray, test_y: np.ndarray,
                   mesh: Optional[Mesh] = None,
                   per_batch: Optional[int] = -1) -> np.ndarray:
  """Test accuracies [M] of the stacked inits, each trained on (x, targets).

  key: split into one key per network (its shuffles and augmentations).
  per_batch: as in evaluate.evaluate_set.
  """
  mesh, per_batch = evaluate.placement(mesh, per_batch)
  num_models = jax.tree.leaves(params0_M)[0].shape[0]
  key_data_M = jax.random.key_data(jax.random.split(key, num_models))
  padded, _ = evaluate.split_models((params0_M, key_data_M), mesh)
  data = sharding.put((np.asarray(x_NxHxWxC, np.float32),
                       np.asarray(targets_NxK, np.float32)),
                      sharding.replicated(mesh))
  params_M = _program(apply_fn, recipe, mesh, per_batch)(*padded, *data)
  params_M = jax.tree.map(lambda a: a[:num_models],
                          sharding.to_host(params_M))
  return evaluate.accuracy(apply_fn, params_M, test_x, test_y, mesh,
                           per_batch=per_batch)


def flattened(d: export.DistilledSet) -> tuple[np.ndarray, np.ndarray]:
  """All steps' images [S * n, H, W, C] and their soft labels [S * n, K]."""
  return (d.images.reshape(-1, *d.images.shape[2:]),
          d.soft_labels.reshape(-1, d.soft_labels.shape[-1]))


def load(config: ml_collections.ConfigDict, path: str, archs: Sequence[str]):
  """(the config's test data, the set at `path`), each checked, as is
  `archs`: every problem with the inputs is found before any training.

  config: the config the set was distilled with; it names the dataset (the
  test set, and the image shape), the init distribution and the seed.
  """
  unknown = [a for a in archs if a not in models.MODELS]
  if unknown or not archs:
    raise ConfigError(f'--arch: unknown architectures {unknown}; known: '
                      f'{sorted(models.MODELS)}')
  config_checks.validate(config)
  data, _ = train.load_split_data(config)  # Whitened as the run was.
  return data, train.load_distilled_for(config, data, path)


def evaluate_set(config: ml_collections.ConfigDict, data, d,
                 archs: Sequence[str], num_models: int,
                 recipe: Recipe) -> list[dict[str, Any]]:
  """The standard evaluation of distilled set `d` on each of `archs`
  (`load` gives `data` and `d`).

  An architecture that cannot take the dataset's images (LeNet 28x28 or
  32x32, AlexCifarNet 32x32) gets a row saying so instead of a result.
  Returns one row per architecture: {'arch', 'test_accuracy'} (evaluate.
  summarize) or {'arch', 'skipped': why}.
  """
  x, targets = flattened(d)
  kernel_init = inits.kernel_initializer(config.model.init,
                                         config.model.init_gain)
  # The inner steps' conv (auto: matmul on CPU), not first_order_conv_impl:
  # its 'split' runs wide layers (ConvNet's) as XLA convolutions, which on
  # CPU run many times slower inside the training scan.
  conv_impl = config.model.conv_impl
  base_key = train.run_keys(config.seed)['standard_eval']
  rows = []
  for arch in archs:
    try:
      model = models.make_model(arch, data.num_classes, data.image_shape,
                                kernel_init, conv_impl)
    except ValueError as e:  # The images do not fit the architecture.
      rows.append({'arch': arch, 'skipped': str(e)})
      continue
    # Keyed by the name: an architecture's inits do not depend on the list.
    k_init, k_train = jax.random.split(
        jax.random.fold_in(base_key, zlib.crc32(arch.encode())))
    params0_M = inits.sample_params(model, k_init, num_models,
                                    data.image_shape)
    accs = train_and_test(models.Apply(model), recipe, params0_M, k_train,
                          x, targets, data.test_images, data.test_labels)
    rows.append({'arch': arch, 'test_accuracy': evaluate.summarize(accs)})
  return rows


# What write_outputs leaves in its folder.
OUTPUTS = ('standard_eval.md', 'standard_eval.csv', 'standard_eval.json')


def write_outputs(out_dir: str, rows: Sequence[dict[str, Any]],
                  recipe: Recipe, distilled: str) -> str:
  """standard_eval.md / .csv (the cross-architecture table) and .json in
  `out_dir`, each written whole; returns the Markdown."""
  header = ('architecture', 'test accuracy (%)', 'std (%)', 'models')
  table_rows, skipped = [], []
  for row in rows:
    if 'skipped' in row:
      table_rows.append((row['arch'], 'n/a', '', 0))
      skipped.append(f"{row['arch']}: {row['skipped']}")
      continue
    acc = row['test_accuracy']
    table_rows.append((row['arch'], f"{100 * acc['mean']:.2f}",
                       f"{100 * acc['std']:.2f}", acc['n_models']))
  dsa = recipe.dsa
  note = (f'Standard evaluation of {distilled}: fresh networks trained on '
          f'all its images for {recipe.epochs} epochs (SGD, lr {recipe.lr} '
          f'x{recipe.lr_decay} halfway, momentum {recipe.momentum}, weight '
          f'decay {recipe.weight_decay}, minibatches of {recipe.batch_size}'
          + (f', DSA {",".join(dsa.names)} at strength {dsa.strength}'
             if dsa else ', no augmentation') + '), learned lrs ignored.')
  if skipped:
    note += ' Not evaluated: ' + '; '.join(skipped) + '.'
  md, csv_text = workdir.table(header, table_rows, note)
  os.makedirs(out_dir, exist_ok=True)
  stem = os.path.join(out_dir, 'standard_eval')
  workdir.write_table(stem, md, csv_text)
  workdir.write_json(stem + '.json', {'distilled': distilled,
                                      'recipe': dataclasses.asdict(recipe),
                                      'rows': list(rows)})
  return md
