"""Held-out evaluation: train fresh networks on a set, test on real data.

The held-out models are split over the devices of the mesh; each device
trains and tests its share one model at a time (`lax.map`), which on CPU is
faster than vmap over conv weights and bounds memory on any device.
"""

import functools
from typing import Optional

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P
import numpy as np

from ddistill import distill
from ddistill import sharding


@functools.lru_cache(maxsize=None)
def _programs(apply_fn: distill.ApplyFn, mesh: Mesh):
  """Jitted (train, count_correct), each split over the mesh's models."""

  def train_shard(params0_M, images_SxNxHxWxC, labels_SxN, lrs_T):
    train_one = lambda p: distill.train_on_distilled(
        apply_fn, p, images_SxNxHxWxC, labels_SxN, lrs_T, remat=False)
    return jax.lax.map(train_one, params0_M)

  def count_shard(params_M, x_BxHxWxC, y_B):
    correct = lambda p: jnp.sum(jnp.argmax(apply_fn(p, x_BxHxWxC), -1) == y_B)
    return jax.lax.map(correct, params_M)

  models = P(sharding.AXIS)
  train = jax.jit(jax.shard_map(train_shard, mesh=mesh,
                                in_specs=(models, P(), P(), P()),
                                out_specs=models))
  count = jax.jit(jax.shard_map(count_shard, mesh=mesh,
                                in_specs=(models, P(), P()),
                                out_specs=models))
  return train, count


def evaluate_set(apply_fn: distill.ApplyFn, params0_M: distill.Params,
                 images_SxNxHxWxC: jax.Array, labels_SxN: jax.Array,
                 lrs_T: jax.Array, test_x: np.ndarray, test_y: np.ndarray,
                 mesh: Optional[Mesh] = None,
                 chunk: int = 2500) -> np.ndarray:
  """Test accuracies [M] of the stacked inits trained on (images, lrs)."""
  mesh = mesh or sharding.make_mesh()
  train, count = _programs(apply_fn, mesh)
  params0_M, num_models = sharding.pad_to_multiple(
      sharding.to_host(params0_M), mesh.size)
  rep = sharding.replicated(mesh)
  params_M = train(sharding.put(params0_M, sharding.split_inits(mesh)),
                   *sharding.put(sharding.to_host(
                       (images_SxNxHxWxC, labels_SxN, lrs_T)), rep))
  correct = np.zeros(num_models, np.int64)
  for start in range(0, len(test_x), chunk):
    batch = sharding.put((test_x[start:start + chunk],
                          test_y[start:start + chunk]), rep)
    correct += sharding.to_host(count(params_M, *batch))[:num_models]
  return correct / len(test_x)


def summarize(accs: np.ndarray) -> dict:
  """Mean and std (population) of accuracies, with the number of models."""
  accs = np.asarray(accs, np.float64)
  return {'mean': float(accs.mean()), 'std': float(accs.std()),
          'n_models': int(accs.size)}
