"""Many networks pretrained at once, and the pools distillation reads them from.

`pretrain` trains N networks from N random inits in parallel (`vmap`), each
with its own batch order, with Adam and a step decay, as the paper's code
pretrains its LeNets. A pool on disk is an orbax checkpoint of
`{'train': params [N_train, ...], 'heldout': params [N_heldout, ...]}`:
distillation samples from 'train' and results are reported on 'heldout'.
"""

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm

from ddistill import atomic_files
from ddistill import checkpoints
from ddistill import distill
from ddistill import errors
from ddistill import inits

POOL_SPLITS = ('train', 'heldout')


def pretrain(model, key: jax.Array, x: np.ndarray, y: np.ndarray,
             num_nets: int, epochs: int, batch_size: int, lr: float,
             decay_every_epochs: int, decay_factor: float = 0.1,
             start_N=None, b1: float = 0.9):
  """`num_nets` networks trained on (x, y); their params stacked on axis 0.

  b1: Adam's beta1 (the official code pretrains with 0.5).

  start_N: stacked params to fine-tune instead of fresh random inits.
  """
  image_shape = tuple(x.shape[1:])
  steps_per_epoch = len(x) // batch_size
  if steps_per_epoch < 1:
    raise errors.ConfigError(f'batch_size {batch_size} (config.batch_size) '
                             f'is more than the {len(x)} training images')
  optimizer = optax.adam(optax.exponential_decay(
      lr, decay_every_epochs * steps_per_epoch, decay_factor, staircase=True),
                         b1=b1)
  k_init, k_order = jax.random.split(key)
  params_N = (inits.sample_params(model, k_init, num_nets, image_shape)
              if start_N is None else start_N)
  opt_N = jax.vmap(optimizer.init)(params_N)
  x, y = jnp.asarray(x), jnp.asarray(y)
  apply_fn = lambda p, xb: model.apply({'params': p}, xb)

  def one_step(params, opt_state, idx_B):
    grads = jax.grad(lambda p: distill.cross_entropy(
        apply_fn(p, x[idx_B]), y[idx_B]))(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  @jax.jit
  def epoch(params_N, opt_N, key):
    # Every net draws its own order of the training set.
    order_NxSxB = jax.vmap(lambda k: jax.random.permutation(k, len(x))[
        :steps_per_epoch * batch_size].reshape(steps_per_epoch, batch_size))(
            jax.random.split(key, num_nets))

    def body(carry, idx_NxB):
      return jax.vmap(one_step)(*carry, idx_NxB), None

    (params_N, opt_N), _ = jax.lax.scan(body, (params_N, opt_N),
                                        jnp.swapaxes(order_NxSxB, 0, 1))
    return params_N, opt_N

  for e in tqdm.trange(epochs, desc=f'pretrain {num_nets} nets',
                       unit='epoch', disable=jax.process_index() != 0):
    params_N, opt_N = epoch(params_N, opt_N, jax.random.fold_in(k_order, e))
    if not all(np.all(np.isfinite(np.asarray(a)))
               for a in jax.tree.leaves(params_N)):
      raise errors.Diverged(f'non-finite weights after pretraining epoch '
                            f'{e}')
  return params_N


def save_pool(path: str, pool: dict, info: dict) -> None:
  """Writes the pool (orbax) and `info.json` (how it was made, accuracies)."""
  path = os.path.abspath(path)
  if os.path.exists(os.path.join(path, 'params')):
    raise FileExistsError(f'{path} already holds a pool; use another folder')
  os.makedirs(path, exist_ok=True)
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(os.path.join(path, 'params'), jax.device_get(pool))
  atomic_files.write_json(os.path.join(path, 'info.json'), info)


def load_pool(path: str, model, image_shape: tuple[int, ...]) -> dict[str, Any]:
  """The pool at `path`, checked against `model`'s parameter shapes."""
  path = os.path.abspath(path)
  if not os.path.isdir(os.path.join(path, 'params')):
    raise FileNotFoundError(f'{path}: no pretrained pool here (expected '
                            'params/ written by experiments.pretrain)')
  try:
    with ocp.StandardCheckpointer() as ckpt:
      pool = ckpt.restore(os.path.join(path, 'params'))
  except MemoryError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    # Whatever layer of orbax or tensorstore reports the damage.
    checkpoints.quiet_reads_left_in_flight()
    raise errors.DataError(f'{path}: the pool cannot be read '
                           f'({checkpoints.reason(e)}); pretrain it again in '
                           'another folder') from e
  want = inits.init_params(model, jax.random.key(0), image_shape)
  for split in POOL_SPLITS:
    if split not in pool:
      raise errors.DataError(f'{path}: pool has no {split!r} networks')
    got = [tuple(np.shape(a)[1:]) for a in jax.tree.leaves(pool[split])]
    need = [tuple(np.shape(a)) for a in jax.tree.leaves(want)]
    if (jax.tree.structure(pool[split]) != jax.tree.structure(want) or
        got != need):
      raise errors.DataError(
          f'{path}: its {split} networks do not fit the model (parameter '
          f'shapes {got}, the model has {need})')
  return pool


def pool_size(pool_split: Any) -> int:
  return int(jax.tree.leaves(pool_split)[0].shape[0])
