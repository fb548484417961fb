"""Models by name: a small registry, and `make_model` that checks sizes.

The core registers its networks below; research code adds its own with
`register(name, module_class, sizes=..., min_size=...)`. A registered class
takes `num_classes`, `kernel_init` and `conv_impl`.
"""

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax

from ddistill.models import alexnet
from ddistill.models import convnet
from ddistill.models import nets
from ddistill.models import resnet
from ddistill.models.layers import CONV_IMPLS, Initializer


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  module: type  # A flax Module class.
  sizes: Optional[tuple[int, ...]] = None  # Square sizes taken; None: any.
  min_size: int = 1  # Smallest height and width taken.
  blocks: bool = False  # Has its own path for conv_impl 'blocks'.


MODELS: dict[str, ModelSpec] = {}


def register(name: str, module: type, sizes: Optional[tuple[int, ...]] = None,
             min_size: int = 1, blocks: bool = False) -> None:
  """Makes `name` usable as `config.model.name`; blocks: the module has its
  own path for conv_impl 'blocks' (`layers.conv_relu_pool_blocks`)."""
  MODELS[name] = ModelSpec(module, sizes, min_size, blocks)


register('lenet', nets.LeNet, sizes=(28, 32), blocks=True)
register('alexcifarnet', nets.AlexCifarNet, sizes=(32,))
register('mlp', nets.MLP)
register('resnet18_gn', resnet.ResNet18GN)
register('alexnet', alexnet.AlexNet, min_size=alexnet.MIN_SIZE)
register('convnet', convnet.ConvNet, min_size=convnet.MIN_SIZE)


@dataclasses.dataclass(frozen=True)
class Apply:
  """`apply(params, x_BxHxWxC) -> logits` for a model.

  Hashable and compared by the model, so `jax.jit` can take it as a static
  argument without recompiling for an equal model.
  """
  model: nn.Module

  def __call__(self, params: Any, x_BxHxWxC: jax.Array) -> jax.Array:
    return self.model.apply({'params': params}, x_BxHxWxC)


def _has_blocks(name: str) -> bool:
  return name in MODELS and MODELS[name].blocks


def default_conv_impl() -> str:
  """'matmul' on CPU (faster there), XLA's own convolutions elsewhere."""
  return 'matmul' if jax.default_backend() == 'cpu' else 'xla'


# From this many images per GD step, CPU's 'auto' runs a model with blocks
# (LeNet) on them, as it ran `banded` before. Both break a flat region's
# exact ties by rounding, in an order set by the matmul's shape, so a run's
# updates of such pixels can depend on the inits per device; below this,
# im2col keeps the ties exact, and such runs match across device counts
# (benchmarks/README.md, session 28).
BLOCKS_FROM_IMAGES = 100


def inner_conv_impl(impl: str, images_per_step: int, name: str) -> str:
  """The conv for the inner GD steps of model `name`. 'auto' on CPU:
  'blocks' for a model that has them, from `BLOCKS_FROM_IMAGES` images per
  step; otherwise `impl`, which `make_model` resolves (`default_conv_impl`)."""
  if (impl == 'auto' and jax.default_backend() == 'cpu'
      and images_per_step >= BLOCKS_FROM_IMAGES and _has_blocks(name)):
    return 'blocks'
  return impl


def first_order_conv_impl(impl: str, conv_impl: str, name: str) -> str:
  """The conv for passes differentiated once (the real batch, evaluation)
  of model `name`. 'auto' on CPU: 'blocks' for a model that has them (its
  weight gradients do not depend, up to rounding, on how ties break: tied
  positions see the same window), else 'split'; elsewhere the inner steps'
  `conv_impl`.
  """
  if impl != 'auto':
    return impl
  if jax.default_backend() == 'cpu':
    return 'blocks' if _has_blocks(name) else 'split'
  return default_conv_impl() if conv_impl == 'auto' else conv_impl


def make_model(name: str, num_classes: int, image_shape: tuple[int, ...],
               kernel_init: Initializer, conv_impl: str = 'auto') -> nn.Module:
  """Builds model `name`, checking it can take images of `image_shape`.

  conv_impl: one of `layers.CONV_IMPLS`, or 'auto' (`default_conv_impl`).
  """
  if conv_impl == 'auto':
    conv_impl = default_conv_impl()
  if conv_impl not in CONV_IMPLS:
    raise ValueError(f'unknown conv_impl {conv_impl!r}; known: '
                     f'{("auto",) + CONV_IMPLS}')
  if name not in MODELS:
    raise ValueError(f'unknown model {name!r}; known: {sorted(MODELS)}')
  spec = MODELS[name]
  height, width = image_shape[:2]
  if spec.sizes is not None and (height != width or height not in spec.sizes):
    raise ValueError(f'model {name!r} takes square images of size '
                     f'{spec.sizes}, not {height}x{width}')
  if min(height, width) < spec.min_size:
    raise ValueError(f'model {name!r} takes images of at least '
                     f'{spec.min_size}x{spec.min_size}, not {height}x{width}')
  return spec.module(num_classes=num_classes, kernel_init=kernel_init,
                     conv_impl=conv_impl)
