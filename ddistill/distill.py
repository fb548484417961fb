"""The dataset-distillation engine (Algorithm 1 with the multi-step extension).

The distilled set is a plain pytree `{'images': [S, N, H, W, C], 'raw_lrs':
[S * E]}`: S steps of N images each (labels fixed, see `distilled_labels`),
applied in order E times, with one learned learning rate per applied step,
kept positive through softplus. With learned labels (soft labels,
Sucholutsky and Schonlau) it also holds 'label_logits' [S, N, K], and the
inner steps fit their softmax; with raw labels (that paper's own form) it
holds 'label_targets' [S, N, K], unnormalised, which the inner steps fit as
they are. Everything here is a pure function.
"""

import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

Params = Any
ApplyFn = Callable[[Params, jax.Array], jax.Array]
# {'images': [S, N, H, W, C], 'raw_lrs': [S * E]}, with learned labels also
# 'label_logits': [S, N, K], with raw labels 'label_targets': [S, N, K].
Distilled = dict
BATCHINGS = ('vmap', 'map')
LABEL_MODES = ('hard', 'learned', 'raw')
# The distilled set's entry that each label mode learns ('hard': none).
LABEL_KEYS = {'learned': 'label_logits', 'raw': 'label_targets'}


def distilled_labels(num_steps: int, num_classes: int,
                     images_per_class: int) -> jax.Array:
  """Labels [S, N]: each step holds classes 0..K-1, `images_per_class` times."""
  one_step = jnp.tile(jnp.arange(num_classes, dtype=jnp.int32),
                      images_per_class)
  return jnp.tile(one_step, (num_steps, 1))


def init_label_logits(labels_SxN: jax.Array, num_classes: int,
                      scale: float) -> jax.Array:
  """Learned labels' starting logits [S, N, K]: `scale` times the one-hot."""
  return scale * jax.nn.one_hot(labels_SxN, num_classes, dtype=jnp.float32)


def init_labels(label_mode: str, labels_SxN: jax.Array, num_classes: int,
                scale: float) -> Distilled:
  """The learned labels a distilled set starts with, as its entries: none
  for 'hard'; logits of `scale` times the one-hot for 'learned'; the one-hot
  itself for 'raw' (exactly the hard labels' loss at first)."""
  if label_mode == 'learned':
    return {'label_logits': init_label_logits(labels_SxN, num_classes, scale)}
  if label_mode == 'raw':
    return {'label_targets': jax.nn.one_hot(labels_SxN, num_classes,
                                            dtype=jnp.float32)}
  return {}


def inner_targets(distilled: Distilled, labels_SxN: jax.Array) -> jax.Array:
  """What the inner steps fit: the class labels [S, N]; with learned labels,
  the softmax of the label logits [S, N, K]; with raw labels, the label
  targets [S, N, K] themselves.

  Raw targets are unbounded (the loss is -sum_k y_k log p_k), so each image's
  targets also scale its gradient, as in Soft-Label Dataset Distillation's
  code, where labels start one-hot and are neither normalised nor clipped.
  """
  if 'label_logits' in distilled:
    return jax.nn.softmax(distilled['label_logits'])
  if 'label_targets' in distilled:
    return distilled['label_targets']
  return labels_SxN


def lrs_from_raw(raw_lrs: jax.Array) -> jax.Array:
  return jax.nn.softplus(raw_lrs)


def raw_from_lrs(lrs: jax.Array) -> jax.Array:
  """The inverse of softplus: log(exp(lr) - 1)."""
  lrs = jnp.asarray(lrs, jnp.float32)
  return lrs + jnp.log(-jnp.expm1(-lrs))


def init_distilled(key: jax.Array, labels_SxN: jax.Array,
                   image_shape: tuple[int, ...], num_epochs: int,
                   lr_init: float, image_init: str = 'normal',
                   real_images: Optional[jax.Array] = None,
                   real_labels: Optional[jax.Array] = None) -> Distilled:
  """The starting distilled set: N(0, 1) images or random real ones."""
  num_steps, n = labels_SxN.shape
  if image_init == 'normal':
    images = jax.random.normal(key, (num_steps, n, *image_shape))
  elif image_init == 'real':
    # For each distilled slot, a random real image of the slot's class.
    # Gumbel-max over the class mask picks uniformly among that class.
    mask_LxR = labels_SxN.reshape(-1, 1) == real_labels[None, :]
    gumbel = jax.random.gumbel(key, mask_LxR.shape)
    picks = jnp.argmax(jnp.where(mask_LxR, gumbel, -jnp.inf), axis=1)
    images = real_images[picks].reshape(num_steps, n, *image_shape)
  else:
    raise ValueError(f'unknown image_init {image_init!r}; use "normal" or '
                     '"real"')
  raw_lrs = jnp.full((num_steps * num_epochs,), raw_from_lrs(lr_init))
  return {'images': images.astype(jnp.float32), 'raw_lrs': raw_lrs}


def cross_entropy(logits_BxK: jax.Array, labels_B: jax.Array) -> jax.Array:
  """Mean cross-entropy against class labels [B] or distributions [B, K]."""
  if labels_B.ndim == logits_BxK.ndim:
    return optax.softmax_cross_entropy(logits_BxK, labels_B).mean()
  return optax.softmax_cross_entropy_with_integer_labels(logits_BxK,
                                                         labels_B).mean()


def gd_step(apply_fn: ApplyFn, params: Params, x_NxHxWxC: jax.Array,
            labels_N: jax.Array, lr: jax.Array) -> Params:
  """One plain gradient-descent step on a batch of (distilled) images.

  labels_N: class labels [N], or label distributions [N, K].
  """
  loss_fn = lambda p: cross_entropy(apply_fn(p, x_NxHxWxC), labels_N)
  grads = jax.grad(loss_fn)(params)
  return jax.tree.map(lambda p, g: p - lr * g, params, grads)


def train_on_distilled(apply_fn: ApplyFn, params: Params,
                       images_SxNxHxWxC: jax.Array, labels_SxN: jax.Array,
                       lrs_T: jax.Array, remat: bool = True,
                       unroll: int | bool = 1) -> Params:
  """Applies the S steps in order, T / S epochs times (T = len(lrs_T)).

  labels_SxN: class labels [S, N], or label distributions [S, N, K].
  Nested scans, epochs outside: the images of each step come in as scan
  inputs, so no copy of them is made per epoch. With `remat`, the backward
  pass recomputes each step instead of storing its activations, so memory
  grows with T by one set of parameters per step. `unroll` is passed to
  both scans (True unrolls them fully).
  """
  num_steps = images_SxNxHxWxC.shape[0]
  lrs_ExS = lrs_T.reshape(-1, num_steps)

  def step(params, xs):
    x_NxHxWxC, labels_N, lr = xs
    return gd_step(apply_fn, params, x_NxHxWxC, labels_N, lr), None

  if remat:
    step = jax.checkpoint(step)

  def epoch(params, lrs_S):
    params, _ = jax.lax.scan(step, params,
                             (images_SxNxHxWxC, labels_SxN, lrs_S),
                             unroll=unroll)
    return params, None

  params, _ = jax.lax.scan(epoch, params, lrs_ExS, unroll=unroll)
  return params


def train_truncated(apply_fn: ApplyFn, params: Params,
                    images_SxNxHxWxC: jax.Array, labels_SxN: jax.Array,
                    lrs_T: jax.Array, end_step: jax.Array, window: int,
                    remat: bool = True, unroll: int | bool = 1) -> Params:
  """The first `end_step` of `train_on_distilled`'s T steps, differentiated
  through only the last `window` of them (RaT-BPTT, Feng et al. 2024).

  end_step: a traced integer in [window, T], so one compiled program serves
  every end. The steps before the window run in a loop of traced length on
  stopped gradients: no backward pass is built or stored for them. The
  window is a scan of static length `window` from the traced start.
  """
  num_steps = images_SxNxHxWxC.shape[0]
  start = end_step - window
  frozen = jax.lax.stop_gradient((images_SxNxHxWxC, labels_SxN, lrs_T))

  def frozen_step(t, params):
    images, labels, lrs = frozen
    s = t % num_steps
    return gd_step(apply_fn, params, images[s], labels[s], lrs[t])

  params = jax.lax.fori_loop(0, start, frozen_step,
                             jax.lax.stop_gradient(params))

  def step(params, t):
    s = t % num_steps
    return gd_step(apply_fn, params, images_SxNxHxWxC[s], labels_SxN[s],
                   lrs_T[t]), None

  if remat:
    step = jax.checkpoint(step)
  params, _ = jax.lax.scan(step, params, start + jnp.arange(window),
                           unroll=unroll)
  return params


# XLA:CPU allocates each execution's scratch anew, and glibc maps an
# allocation of tens of MB afresh each time, so every page of it faults again
# every iteration. 128 real images at a time keep LeNet's real pass small
# enough to be reused (benchmarks/README.md, session 42).
CPU_REAL_CHUNK = 128


def real_chunk_size(requested: int) -> int:
  """distill.real_chunk resolved: -1 (auto) is CPU_REAL_CHUNK on CPU, else 0
  (the whole batch in one pass: GPU and TPU allocators reuse their memory);
  n >= 0 is kept."""
  if requested < -1:
    raise ValueError(f'real_chunk = {requested}: -1 (auto), 0 (all) or a '
                     'number of images')
  if requested >= 0:
    return requested
  return CPU_REAL_CHUNK if jax.default_backend() == 'cpu' else 0


def real_loss(apply_fn: ApplyFn, params: Params, x_BxHxWxC: jax.Array,
              labels_B: jax.Array, chunk: int = 0,
              unroll: int | bool = 1) -> jax.Array:
  """Mean cross-entropy of the net `params` on the real batch.

  The real batch (images and labels) is data: no gradient flows to it.
  chunk: 0 runs the batch in one pass; n > 0 computes the gradient with
  respect to `params` n images at a time (the last pass takes the
  remainder) and sums, so no pass keeps more than n images' activations:
  the same gradient up to rounding, as long as `apply_fn` treats each image
  on its own (no batch statistics), as every model here does. Only
  reverse-mode gradients chunk: the value alone runs in one pass, and
  forward mode (jvp) raises. `apply_fn` must not close over values being
  differentiated. unroll=True unrolls the loop over chunks too (for FLOP
  counts).
  """
  if chunk < 0:
    raise ValueError(f'real batch chunk {chunk} < 0; resolve real_chunk = '
                     '-1 (auto) with real_chunk_size first')
  x_BxHxWxC = jax.lax.stop_gradient(x_BxHxWxC)
  labels_B = jax.lax.stop_gradient(labels_B)
  if not chunk or x_BxHxWxC.shape[0] <= chunk:
    return cross_entropy(apply_fn(params, x_BxHxWxC), labels_B)
  return _chunked_real_loss(apply_fn, chunk, unroll is True, params,
                            x_BxHxWxC, labels_B)


# A scan over chunks under the outer jax.grad would keep every chunk's
# activations for the backward pass. This custom VJP computes the weight
# gradient chunk by chunk in the forward pass and keeps only it (the size of
# the params) as the residual.
@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _chunked_real_loss(apply_fn, chunk, unroll, params, x_BxHxWxC, labels_B):
  del chunk, unroll  # The value alone runs in one pass; the VJP chunks.
  return cross_entropy(apply_fn(params, x_BxHxWxC), labels_B)


def _chunked_real_loss_fwd(apply_fn, chunk, unroll, params, x_BxHxWxC,
                           labels_B):
  """(loss, its gradient wrt params), summed over chunks of the batch."""
  batch = x_BxHxWxC.shape[0]

  def share_of_mean(x_nxHxWxC, labels_n):
    # (n / B) x the chunk's mean = the chunk's sum / B: its share of the
    # batch's mean loss and gradient.
    loss_fn = lambda p: cross_entropy(apply_fn(p, x_nxHxWxC), labels_n)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    share = x_nxHxWxC.shape[0] / batch
    return share * loss, jax.tree.map(lambda g: share * g, grads)

  def add(total, chunk_xy):
    return jax.tree.map(jnp.add, total, share_of_mean(*chunk_xy)), None

  whole = batch // chunk * chunk

  def in_chunks(a_BxD):
    return a_BxD[:whole].reshape(-1, chunk, *a_BxD.shape[1:])

  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(
      share_of_mean, x_BxHxWxC[:chunk], labels_B[:chunk]))
  total, _ = jax.lax.scan(add, zeros,
                          (in_chunks(x_BxHxWxC), in_chunks(labels_B)),
                          unroll=unroll or 1)
  if whole < batch:
    total = jax.tree.map(jnp.add, total,
                         share_of_mean(x_BxHxWxC[whole:], labels_B[whole:]))
  return total  # The loss, and the gradient as the residual for bwd.


def _chunked_real_loss_bwd(apply_fn, chunk, unroll, grads, g):
  del apply_fn, chunk, unroll
  return (jax.tree.map(lambda a: (g * a).astype(a.dtype), grads), None,
          None)


_chunked_real_loss.defvjp(_chunked_real_loss_fwd, _chunked_real_loss_bwd)


def outer_loss(distilled: Distilled, params0: Params, real_x: jax.Array,
               real_y: jax.Array, *, apply_fn: ApplyFn, labels_SxN: jax.Array,
               remat: bool = True, unroll: int | bool = 1,
               real_apply_fn: Optional[ApplyFn] = None,
               truncate_window: int = 0,
               end_step: Optional[jax.Array] = None,
               real_chunk: int = 0) -> jax.Array:
  """Loss on real data of a net trained from `params0` on the distilled set.

  real_apply_fn: the same network, applied to the real batch (default
  `apply_fn`). That pass is differentiated once, the inner steps twice, so
  each may use the implementation fastest for it (layers.CONV_IMPLS).
  real_chunk: real images per pass of that network (`real_loss`; 0: all).
  truncate_window: 0 trains through all T steps; W > 0 trains through the
  first `end_step` (default T) and differentiates the last W of them
  (`train_truncated`).
  """
  labels = inner_targets(distilled, labels_SxN)
  lrs_T = lrs_from_raw(distilled['raw_lrs'])
  if truncate_window:
    end_step = lrs_T.shape[0] if end_step is None else end_step
    params = train_truncated(apply_fn, params0, distilled['images'], labels,
                             lrs_T, end_step, truncate_window, remat, unroll)
  else:
    params = train_on_distilled(apply_fn, params0, distilled['images'],
                                labels, lrs_T, remat, unroll)
  return real_loss(real_apply_fn or apply_fn, params, real_x, real_y,
                   real_chunk, unroll)


def mean_outer_loss(distilled: Distilled, params0_I: Params, real_x: jax.Array,
                    real_y: jax.Array, *, apply_fn: ApplyFn,
                    labels_SxN: jax.Array, batching: str = 'vmap',
                    remat: bool = True, unroll: int | bool = 1,
                    num_valid: Optional[int] = None,
                    real_apply_fn: Optional[ApplyFn] = None,
                    truncate_window: int = 0,
                    end_step: Optional[jax.Array] = None,
                    augment_images: Optional[Callable] = None,
                    real_chunk: int = 0) -> jax.Array:
  """`outer_loss` averaged over the stacked inits `params0_I` (axis 0).

  num_valid: average over the first `num_valid` inits only; the rest are
  padding that lets the init axis split evenly over devices.

  batching: 'vmap' runs the inits as one batched computation (best on GPU
  and TPU); 'map' runs them one after another (`lax.map`), which on CPU
  avoids the grouped convolutions that vmap over conv weights turns into.
  Both give the same value and gradients.

  augment_images: x_BxHxWxC -> transformed images, applied to all the
  distilled images here, inside the differentiated function, so the
  meta-gradient flows back through it (Siamese augmentation).
  """
  if augment_images is not None:
    images = distilled['images']
    flat = augment_images(images.reshape(-1, *images.shape[2:]))
    distilled = {**distilled, 'images': flat.reshape(images.shape)}
  loss_fn = functools.partial(outer_loss, distilled, real_x=real_x,
                              real_y=real_y, apply_fn=apply_fn,
                              labels_SxN=labels_SxN, remat=remat,
                              unroll=unroll, real_apply_fn=real_apply_fn,
                              truncate_window=truncate_window,
                              end_step=end_step, real_chunk=real_chunk)
  if batching == 'vmap':
    losses_I = jax.vmap(loss_fn, in_axes=0)(params0_I)
  elif batching == 'map':
    losses_I = jax.lax.map(loss_fn, params0_I)
  else:
    raise ValueError(f'unknown batching {batching!r}; known: {BATCHINGS}')
  return losses_I[:num_valid].mean()


def make_optimizer(learning_rate: float, b1: float, decay_every: int,
                   decay_factor: float) -> optax.GradientTransformation:
  """Adam with a step decay of its learning rate, as in the paper's code."""
  schedule = optax.exponential_decay(learning_rate, decay_every, decay_factor,
                                     staircase=True)
  return optax.adam(schedule, b1=b1)


def train_step(state: dict, params0_I: Params, train_x: jax.Array,
               train_y: jax.Array, key: jax.Array, *, apply_fn: ApplyFn,
               labels_SxN: jax.Array, optimizer: optax.GradientTransformation,
               batch_size: int, batching: str = 'vmap',
               remat: bool = True, unroll: int | bool = 1,
               num_valid: Optional[int] = None,
               real_apply_fn: Optional[ApplyFn] = None,
               batch_indices: Optional[Callable] = None,
               augment: Optional[Callable] = None,
               truncate_window: int = 0,
               siamese_augment: Optional[Callable] = None,
               ema: Optional[optax.GradientTransformation] = None,
               real_chunk: int = 0) -> tuple[dict, dict]:
  """One outer iteration: real minibatch, meta-gradient, optimizer update.

  state: {'distilled': ..., 'opt_state': ..., 'step': iteration ('step' is
  read only by `batch_indices`)}; params0_I: this iteration's inits, stacked
  on axis 0 (only the first `num_valid` count, if given).
  batch_indices: (key, step) -> indices [B] of the real batch (default: B
  drawn with replacement); augment: (key, x_BxHxWxC) -> transformed batch.
  truncate_window: W > 0 differentiates the last W steps up to an end step
  drawn uniformly from [W, T] (`train_truncated`).
  siamese_augment: (key, x_BxHxWxC) -> transformed batch, applied with one
  key to the real batch and to the distilled images (DSA, augment.DSA).
  ema: a moving average of the distilled set (`optax.ema`), kept in the
  state as 'ema' (the debiased average) and 'ema_state'.
  real_chunk: real images per pass of the outer loss (`real_loss`; 0: all).
  """
  if augment is not None:
    key, k_augment = jax.random.split(key)
  end_step = None
  if truncate_window:
    key, k_end = jax.random.split(key)
    num_lrs = state['distilled']['raw_lrs'].shape[0]
    end_step = jax.random.randint(k_end, (), truncate_window, num_lrs + 1)
  augment_images = None
  if siamese_augment is not None:
    key, k_siamese = jax.random.split(key)
    augment_images = functools.partial(siamese_augment, k_siamese)
  if batch_indices is None:
    idx_B = jax.random.randint(key, (batch_size,), 0, train_x.shape[0])
  else:
    idx_B = batch_indices(key, state['step'])
  real_x = train_x[idx_B]
  if augment is not None:
    real_x = augment(k_augment, real_x)
  if augment_images is not None:
    real_x = augment_images(real_x)
  loss, grads = jax.value_and_grad(mean_outer_loss)(
      state['distilled'], params0_I, real_x, train_y[idx_B],
      apply_fn=apply_fn, labels_SxN=labels_SxN, batching=batching,
      remat=remat, unroll=unroll, num_valid=num_valid,
      real_apply_fn=real_apply_fn, truncate_window=truncate_window,
      end_step=end_step, augment_images=augment_images,
      real_chunk=real_chunk)
  return apply_meta_gradient(state, loss, grads, optimizer, ema)


def apply_meta_gradient(state: dict, loss: jax.Array, grads: Distilled,
                        optimizer: optax.GradientTransformation,
                        ema: Optional[optax.GradientTransformation] = None
                        ) -> tuple[dict, dict]:
  """`train_step`'s update of the set (and of its moving average, given
  `ema`) by the meta-gradient `grads`, and the iteration's metrics."""
  updates, opt_state = optimizer.update(grads, state['opt_state'],
                                        state['distilled'])
  distilled = optax.apply_updates(state['distilled'], updates)
  new_state = {'distilled': distilled, 'opt_state': opt_state}
  if ema is not None:
    new_state['ema'], new_state['ema_state'] = ema.update(distilled,
                                                          state['ema_state'])
  metrics = {'loss': loss,
             'grad_norm_images': optax.tree.norm(grads['images']),
             'grad_norm_lrs': optax.tree.norm(grads['raw_lrs'])}
  for key in LABEL_KEYS.values():
    if key in grads:
      metrics['grad_norm_labels'] = optax.tree.norm(grads[key])
  return new_state, metrics
