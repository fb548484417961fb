"""Real training batches for the outer loss: which images, and their transform.

Both run inside the jitted outer step. Samplings:
  iid     each batch drawn with replacement, independently per iteration.
  epochs  shuffled epochs without replacement, as the official data loader;
          an epoch is floor(N / B) full batches of a fresh shuffle (its last
          N mod B images sit that epoch out, so every batch has the same
          shape under jit).
Augmentations (the official code's training transforms):
  none
  crop_flip          CIFAR-10: reflect-pad 4, random crop back to size,
                     random horizontal flip.
  resized_crop_flip  VOC, CUB: random resized crop (area 8% to 100%, aspect
                     3/4 to 4/3, bicubic), random horizontal flip.
"""

import functools

import jax
import jax.numpy as jnp

from ddistill import errors

SAMPLINGS = ('iid', 'epochs')
AUGMENTS = ('none', 'crop_flip', 'resized_crop_flip')


def check_epochs(num_examples: int, batch_size: int) -> None:
  """Epochs sampling draws without replacement: a batch fits the set."""
  if batch_size > num_examples:
    raise errors.ConfigError(
        f'real_batch_size = {batch_size} exceeds the {num_examples} '
        "training examples, and data.sampling = 'epochs' draws batches "
        'without replacement')


def batch_indices(key: jax.Array, step: jax.Array, *, sampling: str,
                  num_examples: int, batch_size: int,
                  epoch_key: jax.Array) -> jax.Array:
  """Indices [B] of iteration `step`'s real batch.

  key: this iteration's key (iid); epoch_key: the run's data key, folded with
  the epoch number (epochs), so every batch of an epoch sees one shuffle.
  """
  if sampling == 'iid':
    return jax.random.randint(key, (batch_size,), 0, num_examples)
  if sampling == 'epochs':
    check_epochs(num_examples, batch_size)
    per_epoch = num_examples // batch_size
    epoch, position = jnp.divmod(step, per_epoch)
    order = jax.random.permutation(jax.random.fold_in(epoch_key, epoch),
                                   num_examples)
    return jax.lax.dynamic_slice(order, (position * batch_size,),
                                 (batch_size,))
  raise ValueError(f'unknown sampling {sampling!r}; known: {SAMPLINGS}')


def _flip(key: jax.Array, x_HxWxC: jax.Array) -> jax.Array:
  return jnp.where(jax.random.bernoulli(key), x_HxWxC[:, ::-1], x_HxWxC)


def _crop_flip_one(key: jax.Array, x_HxWxC: jax.Array, pad: int) -> jax.Array:
  k_crop, k_flip = jax.random.split(key)
  padded = jnp.pad(x_HxWxC, ((pad, pad), (pad, pad), (0, 0)), mode='reflect')
  top, left = jax.random.randint(k_crop, (2,), 0, 2 * pad + 1)
  crop = jax.lax.dynamic_slice(padded, (top, left, 0), x_HxWxC.shape)
  return _flip(k_flip, crop)


def _resized_crop_flip_one(key: jax.Array, x_HxWxC: jax.Array) -> jax.Array:
  k_area, k_ratio, k_pos, k_flip = jax.random.split(key, 4)
  h, w, _ = x_HxWxC.shape
  area = jax.random.uniform(k_area, minval=0.08, maxval=1.0) * h * w
  ratio = jnp.exp(jax.random.uniform(k_ratio, minval=jnp.log(3 / 4),
                                     maxval=jnp.log(4 / 3)))
  # torchvision retries crops that do not fit; clipping them is simpler.
  crop_h = jnp.clip(jnp.sqrt(area / ratio), 1.0, h)
  crop_w = jnp.clip(jnp.sqrt(area * ratio), 1.0, w)
  top, left = jax.random.uniform(k_pos, (2,)) * jnp.stack(
      [h - crop_h, w - crop_w])
  scale = jnp.stack([h / crop_h, w / crop_w])
  crop = jax.image.scale_and_translate(
      x_HxWxC, x_HxWxC.shape, (0, 1), scale, -jnp.stack([top, left]) * scale,
      method='cubic')
  return _flip(k_flip, crop)


def augment(key: jax.Array, x_BxHxWxC: jax.Array, name: str) -> jax.Array:
  """`name`'s transform, drawn independently for each image of the batch."""
  if name == 'none':
    return x_BxHxWxC
  if name == 'crop_flip':
    one = functools.partial(_crop_flip_one, pad=4)
  elif name == 'resized_crop_flip':
    one = _resized_crop_flip_one
  else:
    raise ValueError(f'unknown augment {name!r}; known: {AUGMENTS}')
  keys = jax.random.split(key, x_BxHxWxC.shape[0])
  return jax.vmap(one)(keys, x_BxHxWxC)
