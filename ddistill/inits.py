"""Weight initializations, matching PyTorch's `nn.init` (biases are zero)."""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ddistill.models import Initializer

INITS = ('xavier_normal', 'xavier_uniform', 'kaiming', 'orthogonal')


def kernel_initializer(name: str, gain: float = 1.0) -> Initializer:
  """The kernel initializer `name`, scaled by `gain`.

  jax's 'normal' distribution is untruncated, like torch.nn.init's; fans of a
  conv kernel [kh, kw, in, out] include the receptive field, also like torch.
  """
  if name == 'xavier_normal':
    return nn.initializers.variance_scaling(gain**2, 'fan_avg', 'normal')
  if name == 'xavier_uniform':
    return nn.initializers.variance_scaling(gain**2, 'fan_avg', 'uniform')
  if name == 'kaiming':
    # He et al.: std = gain * sqrt(2 / fan_in).
    return nn.initializers.variance_scaling(2.0 * gain**2, 'fan_in', 'normal')
  if name == 'orthogonal':
    return nn.initializers.orthogonal(scale=gain)
  raise ValueError(f'unknown init {name!r}; known: {list(INITS)}')


# Drawing parameters is elementwise RNG math that runs once per draw, yet
# LLVM's optimizer spends seconds on each such program for no gain: they are
# compiled without it.
QUICK_COMPILE = {'xla_backend_optimization_level': 0}


def compile_quickly(fn: Callable, example_key: jax.Array, **jit_kwargs):
  """fn (of one key) jit-compiled without LLVM optimization."""
  return jax.jit(fn, **jit_kwargs).lower(example_key).compile(
      compiler_options=QUICK_COMPILE)


def _draw(fn: Callable, key: jax.Array):
  # Inside a caller's trace, fn joins the caller's program.
  if isinstance(key, jax.core.Tracer):
    return fn(key)
  return compile_quickly(fn, key)(key)


def init_params(model: nn.Module, key: jax.Array,
                image_shape: tuple[int, ...]):
  """One draw of `model`'s parameters for images of `image_shape` (HWC)."""
  dummy_1xHxWxC = jnp.zeros((1, *image_shape), jnp.float32)
  return _draw(lambda k: model.init(k, dummy_1xHxWxC)['params'], key)


def sample_params(model: nn.Module, key: jax.Array, num: int,
                  image_shape: tuple[int, ...]):
  """`num` independent draws, stacked on a leading axis."""
  dummy_1xHxWxC = jnp.zeros((1, *image_shape), jnp.float32)
  draw_one = lambda k: model.init(k, dummy_1xHxWxC)['params']
  return _draw(lambda k: jax.vmap(draw_one)(jax.random.split(k, num)), key)
