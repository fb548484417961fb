"""iCaRL (Rebuffi et al., 2017) as GEM's experiments run it: a baseline of
the paper's Table 4 on class-incremental streams (split CIFAR-100).

Per task: one pass of SGD on cross-entropy over the task's classes, plus
`icarl_reg` times a distillation term that keeps the outputs on stored
exemplars of earlier tasks close to the outputs recorded when they were
stored. After a task, each of its classes keeps `memory_per_task //
classes_per_task` exemplars picked by herding (the same memory per task as
GEM). Prediction is iCaRL's nearest mean of exemplars among the task's
classes, in the space of the network's outputs.
"""

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ddistill import errors
from ddistill.continual import learners
from ddistill.continual import streams


def herding(features_NxD: np.ndarray, k: int) -> np.ndarray:
  """Indices of k rows whose running mean best tracks the mean of all rows.

  Greedy: the i-th pick is the unused row that brings the mean of the picks
  closest to the class mean (iCaRL's exemplar selection).
  """
  if not 1 <= k <= len(features_NxD):
    raise ValueError(f'herding: k = {k} exemplars from '
                     f'{len(features_NxD)} examples')
  f = np.asarray(features_NxD, np.float64)
  mean_D = f.mean(0)
  picked, total_D = [], np.zeros_like(mean_D)
  free = np.ones(len(f), bool)
  for i in range(k):
    cost = np.linalg.norm(mean_D - (total_D + f) / (i + 1), axis=1)
    cost[~free] = np.inf
    j = int(np.argmin(cost))
    picked.append(j)
    free[j] = False
    total_D += f[j]
  return np.asarray(picked)


def nearest_mean(outputs_BxD: jax.Array, means_KxD: jax.Array) -> jax.Array:
  """Index of the closest class mean for each row (l2)."""
  d_BxK = jnp.sum(jnp.square(outputs_BxD[:, None] - means_KxD[None]), -1)
  return jnp.argmin(d_BxK, axis=1)


def _distillation(out_NxC, target_NxC, mask_NxC):
  """KL(softmax(target) || softmax(out)) over each example's task classes."""
  log_q = jax.nn.log_softmax(jnp.where(mask_NxC, out_NxC, -1e9))
  log_p = jax.nn.log_softmax(jnp.where(mask_NxC, target_NxC, -1e9))
  kl = jnp.where(mask_NxC, jnp.exp(log_p) * (log_p - log_q), 0.0)
  return jnp.sum(kl, -1)


def _exemplars_per_class(config, stream) -> int:
  if not isinstance(stream, streams.SplitStream):
    raise ValueError('icarl needs a class-incremental stream '
                     "(config.stream = 'split_cifar100'); every permuted-MNIST "
                     'task has the same 10 classes')
  per_class = config.memory_per_task // stream.classes_per_task
  if per_class < 1:
    raise ValueError(f'config.memory_per_task = {config.memory_per_task} is '
                     f'less than one exemplar for each of the '
                     f'{stream.classes_per_task} classes of a task')
  return per_class


def _make_step(config, net, apply, masks_TxC):
  """One compiled SGD step on the current task plus the exemplars' KL."""

  @jax.jit
  def step(flat, x, y, mask_C, mem_x, mem_out, seen_T, key):
    num_tasks, K, per_class = mem_x.shape[:3]
    shape = mem_x.shape[3:]
    # One random exemplar of each class of each stored task, as GEM's code.
    pick_TxK = jax.random.randint(key, (num_tasks, K), 0, per_class)
    take = lambda m: jnp.take_along_axis(
        m, pick_TxK.reshape((num_tasks, K, 1) + (1,) * (m.ndim - 3)),
        axis=2)[:, :, 0]
    ex_x, ex_out = take(mem_x), take(mem_out)

    def loss(f):
      current = net.loss(f, x, y, mask_C)
      out = apply(f, ex_x.reshape((-1,) + shape)).reshape(ex_out.shape)
      kl_TxK = _distillation(out, ex_out, masks_TxC[:, None])
      # Mean over a task's exemplars, summed over stored tasks (GEM's code).
      kl_T = jnp.mean(kl_TxK, axis=1)
      return current + config.icarl_reg * jnp.sum(jnp.where(seen_T, kl_T, 0.))

    return flat - config.lr * jax.grad(loss)(flat)

  return step


def _store_exemplars(outputs, flat, t, task, memory, per_class):
  """Herds task t's exemplars, then refreshes every stored target."""
  mem_x, mem_out, seen_T = memory
  shape = mem_x.shape[3:]
  _, K, _, num_classes = mem_out.shape
  for k, c in enumerate(task.classes):
    x_c = task.train_x[task.train_y == c]
    if not len(x_c):
      raise ValueError(f'task {t} has no training images of class {c}')
    out_c = _batched(outputs, flat, x_c)[:, np.asarray(task.classes)]
    picks = herding(out_c, min(per_class, len(x_c)))
    # A class with fewer images than slots repeats its picks (fixed shapes).
    mem_x[t, k] = x_c[np.resize(picks, per_class)]
  seen_T[t] = True
  for s in range(t + 1):  # Targets for distillation: today's outputs.
    mem_out[s] = _batched(outputs, flat, mem_x[s].reshape(
        (-1,) + shape)).reshape(K, per_class, num_classes)


def run_stream(config: ml_collections.ConfigDict,
               stream: streams.SplitStream, model, key: jax.Array,
               log: Optional[Callable[[str], None]] = None) -> np.ndarray:
  """Trains iCaRL on a class-incremental stream; returns R [tasks, tasks]."""
  per_class = _exemplars_per_class(config, stream)
  num_tasks, K = len(stream), stream.classes_per_task
  num_classes = stream.data.num_classes
  shape = tuple(stream.task(0).train_x.shape[1:])
  net = learners.make_net(model, shape)
  apply = lambda flat, x: model.apply({'params': net.unravel(flat)}, x)
  k_init, k_order, k_pick = jax.random.split(key, 3)
  flat = net.init(k_init)
  # Exemplars of every task in fixed-shape arrays, so one compiled step
  # serves all tasks; `seen_T` marks the tasks stored so far.
  mem_x = np.zeros((num_tasks, K, per_class) + shape, np.float32)
  mem_out = np.zeros((num_tasks, K, per_class, num_classes), np.float32)
  seen_T = np.zeros(num_tasks, bool)
  masks_TxC = np.stack([streams.class_mask(stream.task(t), num_classes)
                        for t in range(num_tasks)])
  step = _make_step(config, net, apply, masks_TxC)
  outputs = jax.jit(apply)
  R = np.zeros((num_tasks, num_tasks))
  for t in range(num_tasks):
    task = stream.task(t)
    order = np.asarray(jax.random.permutation(jax.random.fold_in(k_order, t),
                                              len(task.train_x)))
    k_t = jax.random.fold_in(k_pick, t)
    for i, start in enumerate(range(0, len(order), config.batch_size)):
      idx = order[start:start + config.batch_size]
      flat = step(flat, task.train_x[idx], task.train_y[idx], masks_TxC[t],
                  mem_x, mem_out, seen_T, jax.random.fold_in(k_t, i))
    if not np.all(np.isfinite(np.asarray(flat))):
      raise errors.Diverged(f'non-finite weights after task {t} (icarl, '
                            f'lr {config.lr}, icarl_reg {config.icarl_reg})')
    _store_exemplars(outputs, flat, t, task, (mem_x, mem_out, seen_T),
                     per_class)
    # mem_out holds today's outputs on every stored exemplar: class means.
    R[t] = [_accuracy(outputs, flat, stream.task(j), mem_out[j].mean(1),
                      seen_T[j]) for j in range(num_tasks)]
    if log:
      log(f'task {t}: mean accuracy so far {R[t, :t + 1].mean():.4f}')
  return R


def _batched(fn, flat, x, chunk: int = 2000) -> np.ndarray:
  return np.concatenate([np.asarray(fn(flat, x[i:i + chunk]))
                         for i in range(0, len(x), chunk)])


def _accuracy(outputs, flat, task: streams.Task, means_KxC: np.ndarray,
              stored: bool) -> float:
  """Nearest mean of exemplars; a task without exemplars yet gets its first
  class for every image (GEM's code answers uniformly there)."""
  if not stored:
    return float(np.mean(task.test_y == task.classes[0]))
  pred = nearest_mean(jnp.asarray(_batched(outputs, flat, task.test_x)),
                      jnp.asarray(means_KxC))
  return float(np.mean(np.asarray(task.classes)[np.asarray(pred)] ==
                       task.test_y))
