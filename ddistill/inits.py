"""Weight initializations, matching PyTorch's `nn.init` (biases are zero)."""

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


def _init(model: nn.Module, key: jax.Array, image_shape: tuple[int, ...]):
  dummy_1xHxWxC = jnp.zeros((1, *image_shape), jnp.float32)
  return model.init(key, dummy_1xHxWxC)['params']


def _sample(model: nn.Module, key: jax.Array, num: int,
            image_shape: tuple[int, ...]):
  keys = jax.random.split(key, num)
  return jax.vmap(lambda k: _init(model, k, image_shape))(keys)


# jax takes compiler options on top-level jits only: called inside a caller's
# trace, a draw joins the caller's program instead.
_quick_init = jax.jit(_init, static_argnums=(0, 2),
                      compiler_options=QUICK_COMPILE)
_quick_sample = jax.jit(_sample, static_argnums=(0, 2, 3),
                        compiler_options=QUICK_COMPILE)


def init_params(model: nn.Module, key: jax.Array,
                image_shape: tuple[int, ...]):
  """One draw of `model`'s parameters for images of `image_shape` (HWC)."""
  draw = _init if isinstance(key, jax.core.Tracer) else _quick_init
  return draw(model, key, tuple(image_shape))


def sample_params(model: nn.Module, key: jax.Array, num: int,
                  image_shape: tuple[int, ...]):
  """`num` independent draws, stacked on a leading axis."""
  draw = _sample if isinstance(key, jax.core.Tracer) else _quick_sample
  return draw(model, key, num, tuple(image_shape))
