"""Held-out evaluation: train fresh networks on a set, test on real data."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ddistill import distill


@functools.partial(jax.jit, static_argnames=('apply_fn',))
def train_models(apply_fn: distill.ApplyFn, params0_M: distill.Params,
                 images_SxNxHxWxC: jax.Array, labels_SxN: jax.Array,
                 lrs_T: jax.Array) -> distill.Params:
  """Trains each of the stacked inits exactly as the inner loop does."""
  train_one = lambda p: distill.train_on_distilled(
      apply_fn, p, images_SxNxHxWxC, labels_SxN, lrs_T, remat=False)
  return jax.lax.map(train_one, params0_M)


@functools.partial(jax.jit, static_argnames=('apply_fn',))
def _count_correct(apply_fn, params_M, x_BxHxWxC, y_B):
  # One model at a time: on CPU, vmap over conv weights is much slower.
  correct = lambda p: jnp.sum(jnp.argmax(apply_fn(p, x_BxHxWxC), -1) == y_B)
  return jax.lax.map(correct, params_M)


def accuracies(apply_fn: distill.ApplyFn, params_M: distill.Params,
               test_x: np.ndarray, test_y: np.ndarray,
               chunk: int = 2500) -> np.ndarray:
  """Test accuracy of each stacked model, in [0, 1], shape [M]."""
  num_models = jax.tree.leaves(params_M)[0].shape[0]
  correct = np.zeros(num_models, np.int64)
  for start in range(0, len(test_x), chunk):
    correct += np.asarray(
        _count_correct(apply_fn, params_M, test_x[start:start + chunk],
                       test_y[start:start + chunk]))
  return correct / len(test_x)


def evaluate_set(apply_fn: distill.ApplyFn, params0_M: distill.Params,
                 images_SxNxHxWxC: jax.Array, labels_SxN: jax.Array,
                 lrs_T: jax.Array, test_x: np.ndarray,
                 test_y: np.ndarray) -> np.ndarray:
  """Accuracies [M] of the inits trained on (images, labels, lrs)."""
  params_M = train_models(apply_fn, params0_M, images_SxNxHxWxC, labels_SxN,
                          lrs_T)
  return accuracies(apply_fn, params_M, test_x, test_y)


def summarize(accs: np.ndarray) -> dict:
  """Mean and std (population) of accuracies, with the number of models."""
  accs = np.asarray(accs, np.float64)
  return {'mean': float(accs.mean()), 'std': float(accs.std()),
          'n_models': int(accs.size)}
