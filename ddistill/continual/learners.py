"""Continual learning over a task stream: SGD, EWC, GEM, GEM + distilled memory.

Every learner makes one pass over each task's training data in minibatches
(as in GEM) and is tested on every task after each one, giving the accuracy
matrix R[i, j] = test accuracy on task j after training on tasks 0..i. The
result is the final average accuracy, R[-1].mean().

Parameters are handled as one flat vector (`jax.flatten_util`), so GEM's
projection and EWC's penalty are plain vector algebra.
"""

import dataclasses
from typing import Callable, Optional

import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import ml_collections
import numpy as np

from ddistill import distill
from ddistill import errors
from ddistill.continual import gem
from ddistill import inits
from ddistill.continual import streams

METHODS = ('sgd', 'ewc', 'gem')


@dataclasses.dataclass(frozen=True)
class Net:
  """A model as functions of its flat parameter vector."""
  loss: Callable  # (flat_P, x_BxHxWxC, y_B, mask_C) -> scalar
  predict: Callable  # (flat_P, x_BxHxWxC, mask_C) -> labels_B
  init: Callable  # key -> flat_P
  unravel: Callable  # flat_P -> params pytree


def make_net(model, image_shape: tuple[int, ...]) -> Net:
  """Masks restrict the logits to a task's classes (GEM's multi-head setup)."""
  _, unravel = ravel_pytree(inits.init_params(model, jax.random.key(0),
                                              image_shape))

  def logits(flat, x, mask_C):
    out = model.apply({'params': unravel(flat)}, x)
    return jnp.where(mask_C, out, -1e9)

  def loss(flat, x, y, mask_C):
    return distill.cross_entropy(logits(flat, x, mask_C), y)

  predict = lambda flat, x, mask_C: jnp.argmax(logits(flat, x, mask_C), -1)
  init = lambda key: ravel_pytree(inits.init_params(model, key,
                                                    image_shape))[0]
  return Net(loss, predict, init, unravel)


def accuracy(net: Net, flat: jax.Array, task: streams.Task,
             num_classes: int, chunk: int = 5000) -> float:
  predict = jax.jit(net.predict)
  mask = streams.class_mask(task, num_classes)
  correct = sum(int(np.sum(np.asarray(predict(flat, task.test_x[i:i + chunk],
                                               mask)) ==
                           task.test_y[i:i + chunk]))
                for i in range(0, len(task.test_x), chunk))
  return correct / len(task.test_x)


def real_memory(task: streams.Task, key: jax.Array,
                size: int) -> tuple[np.ndarray, np.ndarray]:
  """`size` random training examples of the task."""
  idx = np.asarray(jax.random.choice(key, len(task.train_x), (size,),
                                     replace=False))
  return task.train_x[idx], task.train_y[idx]


def distilled_memory(task: streams.Task, key: jax.Array, model,
                     dc: ml_collections.ConfigDict, num_classes: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Distils the task's training data into dc.images_per_class per class.

  Random inits each iteration (the model's Xavier init), one batch of images
  applied for dc.gd_steps GD steps with learned lrs, with the engine's
  optimizer (its real batch in chunks of dc.real_chunk). The images carry
  the task's own labels, and the logits are
  masked to the task's classes (of the model's `num_classes`), as the
  learners that replay the memory mask them. Returns the images, their
  labels and the outer loss of every iteration.
  """
  shape = tuple(task.train_x.shape[1:])
  labels_1xN = jnp.tile(jnp.asarray(task.classes, jnp.int32),
                        dc.images_per_class)[None]
  mask_C = jnp.asarray(streams.class_mask(task, num_classes))
  apply_fn = lambda p, x: jnp.where(mask_C, model.apply({'params': p}, x),
                                    -1e9)
  x, y = jnp.asarray(task.train_x), jnp.asarray(task.train_y)
  k_img, k_run = jax.random.split(key)
  d = distill.init_distilled(k_img, labels_1xN, shape, dc.gd_steps,
                             dc.lr_init, 'real', x, y)
  optimizer = distill.make_optimizer(dc.optim.lr, dc.optim.b1,
                                     dc.optim.decay_every,
                                     dc.optim.decay_factor)
  real_chunk = distill.real_chunk_size(dc.real_chunk)

  @jax.jit
  def step(state, it):
    k_batch, k_inits = jax.random.split(jax.random.fold_in(k_run, it))
    params0_I = inits.sample_params(model, k_inits, dc.num_inits, shape)
    return distill.train_step(state, params0_I, x, y, k_batch,
                              apply_fn=apply_fn, labels_SxN=labels_1xN,
                              optimizer=optimizer,
                              batch_size=min(dc.batch_size, len(x)),
                              real_chunk=real_chunk)

  state = {'distilled': d, 'opt_state': optimizer.init(d)}
  losses = []
  for it in range(dc.iterations):
    state, m = step(state, it)
    losses.append(float(m['loss']))
    if not np.isfinite(losses[-1]):
      raise errors.Diverged(f'non-finite loss distilling a memory at '
                            f'iteration {it}')
  return (np.asarray(state['distilled']['images'][0]),
          np.asarray(labels_1xN[0]), np.asarray(losses))


def _ewc_fisher(net: Net, flat, x, y, mask) -> jax.Array:
  """Diagonal empirical Fisher: mean squared per-example gradient."""
  per_example = jax.vmap(jax.grad(net.loss), in_axes=(None, 0, 0, None))(
      flat, x[:, None], y[:, None], mask)
  return jnp.mean(jnp.square(per_example), axis=0)


MemoryFn = Callable[[int, streams.Task], tuple[np.ndarray, np.ndarray]]


def _sgd_steps(net: Net, config: ml_collections.ConfigDict):
  """The compiled updates: SGD with EWC's penalty, and GEM's pieces."""
  lr = config.lr

  @jax.jit
  def sgd(flat, x, y, mask, anchors_TxP, fisher_TxP):
    def total(f):
      penalty = jnp.sum(fisher_TxP * jnp.square(f[None] - anchors_TxP))
      return net.loss(f, x, y, mask) + 0.5 * config.ewc_lambda * penalty
    return flat - lr * jax.grad(total)(flat)

  grad = jax.jit(jax.grad(net.loss))
  mem_grads = jax.jit(jax.vmap(jax.grad(net.loss), in_axes=(None, 0, 0, 0)))
  update = jax.jit(lambda flat, g: flat - lr * g)
  return sgd, grad, mem_grads, update


def _one_pass(config, steps, flat, t, task, mask, order, memory, anchors,
              fisher):
  """One pass over task t's training data in minibatches."""
  sgd, grad, mem_grads, update = steps
  mem_x, mem_y, mem_masks = memory
  for start in range(0, len(order), config.batch_size):
    idx = order[start:start + config.batch_size]
    x, y = task.train_x[idx], task.train_y[idx]
    if config.method == 'gem' and mem_x:
      g = grad(flat, x, y, mask)
      G = mem_grads(flat, np.stack(mem_x), np.stack(mem_y),
                    np.stack(mem_masks))
      flat = update(flat, gem.project(np.asarray(g), np.asarray(G),
                                      config.gem_margin))
    else:
      flat = sgd(flat, x, y, mask, anchors, fisher)
  if not np.all(np.isfinite(np.asarray(flat))):
    raise errors.Diverged(f'non-finite weights after task {t} '
                          f'({config.method}, lr {config.lr})')
  return flat


def run_stream(config: ml_collections.ConfigDict, stream, model,
               key: jax.Array, make_memory: Optional[MemoryFn] = None,
               log: Optional[Callable[[str], None]] = None) -> np.ndarray:
  """Trains one learner on the stream; returns R [tasks, tasks].

  make_memory(t, task): GEM's memory for task t; by default
  `config.memory_per_task` random training examples.
  """
  if config.method not in METHODS:
    raise ValueError(f'config.method {config.method!r}; known: {METHODS}')
  num_tasks = len(stream)
  num_classes = stream.data.num_classes
  net = make_net(model, tuple(stream.task(0).train_x.shape[1:]))
  steps = _sgd_steps(net, config)
  k_init, k_order, k_mem = jax.random.split(key, 3)
  flat = net.init(k_init)
  anchors = jnp.zeros((num_tasks, flat.shape[0]))
  fisher = jnp.zeros((num_tasks, flat.shape[0]))
  memory = ([], [], [])  # GEM's images, labels and class masks, per task.
  R = np.zeros((num_tasks, num_tasks))
  for t in range(num_tasks):
    task = stream.task(t)
    mask = streams.class_mask(task, num_classes)
    order = np.asarray(jax.random.permutation(jax.random.fold_in(k_order, t),
                                              len(task.train_x)))
    flat = _one_pass(config, steps, flat, t, task, mask, order, memory,
                     anchors, fisher)
    k_t = jax.random.fold_in(k_mem, t)
    if config.method == 'gem':
      if make_memory is None:
        mx, my = real_memory(task, k_t, config.memory_per_task)
      else:
        mx, my = make_memory(t, task)
      for store, item in zip(memory, (mx, my, mask)):
        store.append(item)
    elif config.method == 'ewc' and config.ewc_lambda > 0:
      ex, ey = real_memory(task, k_t, min(config.ewc_samples,
                                          len(task.train_x)))
      anchors = anchors.at[t].set(flat)
      fisher = fisher.at[t].set(_ewc_fisher(net, flat, ex, ey, mask))
    R[t] = [accuracy(net, flat, stream.task(j), num_classes)
            for j in range(num_tasks)]
    if log:
      log(f'task {t}: mean accuracy so far {R[t, :t + 1].mean():.4f}')
  return R
