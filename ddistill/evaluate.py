"""Held-out evaluation: train fresh networks on a set, test on real data.

The held-out models are split over the devices of the mesh; each device
trains and tests its share in parallel with `vmap` on GPU and TPU, and one
model at a time (`lax.map`) on CPU, where vmap over conv weights turns into
slow grouped convolutions.
"""

import functools
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P
import numpy as np

from ddistill import distill
from ddistill import sharding


def models_per_batch(mesh: Mesh) -> Optional[int]:
  """Models a device trains at once: 1 on CPU; vmapped chunks elsewhere
  (chunks, not all at once, so 200 AlexCifarNets fit in device memory)."""
  return None if mesh.devices.flat[0].platform == 'cpu' else 16


@functools.lru_cache(maxsize=None)
def _programs(apply_fn: distill.ApplyFn, mesh: Mesh,
              per_batch: Optional[int]):
  """Jitted (train, train_fixed_lr, count_correct), split over the models."""
  each = functools.partial(jax.lax.map, batch_size=per_batch)

  def train_shard(params0_M, images_SxNxHxWxC, labels_SxN, lrs_T):
    train_one = lambda p: distill.train_on_distilled(
        apply_fn, p, images_SxNxHxWxC, labels_SxN, lrs_T, remat=False)
    return each(train_one, params0_M)

  def train_fixed_lr_shard(params_M, x_NxHxWxC, y_N, lr, num_steps):
    # num_steps is traced, so every step count shares one compiled program.
    step = lambda _, p: distill.gd_step(apply_fn, p, x_NxHxWxC, y_N, lr)
    return each(lambda p: jax.lax.fori_loop(0, num_steps, step, p),
                params_M)

  def count_shard(params_M, x_BxHxWxC, y_B):
    correct = lambda p: jnp.sum(jnp.argmax(apply_fn(p, x_BxHxWxC), -1) == y_B)
    return each(correct, params_M)

  models, rep = P(sharding.AXIS), P()
  split = lambda f, n_rep: jax.jit(jax.shard_map(
      f, mesh=mesh, in_specs=(models,) + (rep,) * n_rep, out_specs=models))
  return split(train_shard, 3), split(train_fixed_lr_shard, 4), split(
      count_shard, 2)


def placement(mesh: Optional[Mesh],
              per_batch: Optional[int]) -> tuple[Mesh, Optional[int]]:
  """The mesh (None: all devices) and models per batch (-1:
  `models_per_batch(mesh)`) an evaluation runs with."""
  mesh = mesh or sharding.make_mesh()
  return mesh, models_per_batch(mesh) if per_batch == -1 else per_batch


def split_models(tree_M: Any, mesh: Mesh):
  """Host or global stacked per-model leaves [M, ...] -> split over the
  mesh, padded to a multiple of its size; and M."""
  tree_M, num_models = sharding.pad_to_multiple(sharding.to_host(tree_M),
                                                mesh.size)
  return sharding.put(tree_M, sharding.split_inits(mesh)), num_models


def _accuracy(apply_fn, params_M, num_models: int, test_x: np.ndarray,
              test_y: np.ndarray, mesh: Mesh, chunk: int,
              per_batch: Optional[int]) -> np.ndarray:
  count = _programs(apply_fn, mesh, per_batch)[2]
  rep = sharding.replicated(mesh)
  # Models x images per program stays at `chunk`, so that wide models run
  # at once do not outgrow device memory (benchmarks/README.md, the H100).
  per_device = jax.tree.leaves(params_M)[0].shape[0] // mesh.size
  chunk = max(1, chunk // min(per_batch or 1, per_device))
  correct = np.zeros(num_models, np.int64)
  for start in range(0, len(test_x), chunk):
    batch = sharding.put((test_x[start:start + chunk],
                          test_y[start:start + chunk]), rep)
    correct += sharding.to_host(count(params_M, *batch))[:num_models]
  return correct / len(test_x)


def accuracy(apply_fn: distill.ApplyFn, params_M: distill.Params,
             x: np.ndarray, y: np.ndarray, mesh: Optional[Mesh] = None,
             chunk: int = 2500, per_batch: Optional[int] = -1) -> np.ndarray:
  """Accuracies [M] of the stacked models on (x, y), as they are (no
  training). per_batch, chunk: as in `evaluate_set`."""
  mesh, per_batch = placement(mesh, per_batch)
  params_M, num_models = split_models(params_M, mesh)
  return _accuracy(apply_fn, params_M, num_models, x, y, mesh, chunk,
                   per_batch)


def evaluate_set(apply_fn: distill.ApplyFn, params0_M: distill.Params,
                 images_SxNxHxWxC: jax.Array, labels_SxN: jax.Array,
                 lrs_T: jax.Array, test_x: np.ndarray, test_y: np.ndarray,
                 mesh: Optional[Mesh] = None, chunk: int = 2500,
                 per_batch: Optional[int] = -1) -> np.ndarray:
  """Test accuracies [M] of the stacked inits trained on (images, lrs).

  labels_SxN: class labels [S, N], or soft labels [S, N, K] (distributions
  to train towards, as learned labels give).
  per_batch: models trained at once per device (None: one at a time);
  -1 picks `models_per_batch(mesh)`.
  chunk: test images per call for one model; models run at once share it.
  """
  return evaluate_set_on(apply_fn, params0_M, images_SxNxHxWxC, labels_SxN,
                         lrs_T, {'test': (test_x, test_y)}, mesh, chunk,
                         per_batch)['test']


def evaluate_set_on(apply_fn: distill.ApplyFn, params0_M: distill.Params,
                    images_SxNxHxWxC: jax.Array, labels_SxN: jax.Array,
                    lrs_T: jax.Array, splits: dict, mesh: Optional[Mesh] = None,
                    chunk: int = 2500,
                    per_batch: Optional[int] = -1) -> dict[str, np.ndarray]:
  """As `evaluate_set`, trained once and tested on each of `splits`
  ({name: (x, y)}): {name: accuracies [M]}."""
  mesh, per_batch = placement(mesh, per_batch)
  train = _programs(apply_fn, mesh, per_batch)[0]
  params0_M, num_models = split_models(params0_M, mesh)
  params_M = train(params0_M, *sharding.put(sharding.to_host(
      (images_SxNxHxWxC, labels_SxN, lrs_T)), sharding.replicated(mesh)))
  return {name: _accuracy(apply_fn, params_M, num_models, x, y, mesh, chunk,
                          per_batch) for name, (x, y) in splits.items()}


def evaluate_fixed_lr(apply_fn: distill.ApplyFn, params0_M: distill.Params,
                      x_NxHxWxC: np.ndarray, y_N: np.ndarray, lr: float,
                      step_counts: Sequence[int], test_x: np.ndarray,
                      test_y: np.ndarray, mesh: Optional[Mesh] = None,
                      chunk: int = 2500,
                      per_batch: Optional[int] = -1) -> np.ndarray:
  """Accuracies [len(step_counts), M]: full-batch GD on one set at lr.

  One training run per model, tested after each count of steps (sorted
  ascending), as the baselines' step grid needs. per_batch: as in
  `evaluate_set`.
  """
  if list(step_counts) != sorted(step_counts) or min(step_counts) < 0:
    raise ValueError(f'step_counts must be ascending and >= 0: {step_counts}')
  mesh, per_batch = placement(mesh, per_batch)
  train_fixed_lr = _programs(apply_fn, mesh, per_batch)[1]
  params_M, num_models = split_models(params0_M, mesh)
  x, y, lr = sharding.put((np.asarray(x_NxHxWxC), np.asarray(y_N),
                           np.float32(lr)), sharding.replicated(mesh))
  accs, done = [], 0
  for count in step_counts:
    params_M = train_fixed_lr(params_M, x, y, lr, np.int32(count - done))
    done = count
    accs.append(_accuracy(apply_fn, params_M, num_models, test_x, test_y,
                          mesh, chunk, per_batch))
  return np.stack(accs)


def summarize(accs: np.ndarray) -> dict:
  """Mean and std (population) of accuracies, with the number of models."""
  accs = np.asarray(accs, np.float64)
  return {'mean': float(accs.mean()), 'std': float(accs.std()),
          'n_models': int(accs.size)}
