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


MODELS: dict[str, ModelSpec] = {}


def register(name: str, module: type, sizes: Optional[tuple[int, ...]] = None,
             min_size: int = 1) -> None:
  """Makes `name` usable as `config.model.name`."""
  MODELS[name] = ModelSpec(module, sizes, min_size)


register('lenet', nets.LeNet, sizes=(28, 32))
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


def default_conv_impl() -> str:
  """'matmul' on CPU (faster there), XLA's own convolutions elsewhere."""
  return 'matmul' if jax.default_backend() == 'cpu' else 'xla'


# From this many images per GD step, CPU's 'auto' runs the inner steps
# banded: faster at 100 images per step, not at 10 (benchmarks/README.md).
BANDED_FROM_IMAGES = 100


def inner_conv_impl(impl: str, images_per_step: int) -> str:
  """The conv for the inner GD steps. 'auto' on CPU: 'banded' from
  `BANDED_FROM_IMAGES` images per step (small layers only: `layers.Conv`);
  otherwise `impl`, which `make_model` resolves (`default_conv_impl`)."""
  if (impl == 'auto' and jax.default_backend() == 'cpu'
      and images_per_step >= BANDED_FROM_IMAGES):
    return 'banded'
  return impl


def first_order_conv_impl(impl: str, conv_impl: str) -> str:
  """The conv for passes differentiated once; 'auto': 'split' on CPU.

  conv_impl: the one the inner steps use, kept on other backends.
  """
  if impl != 'auto':
    return impl
  if jax.default_backend() == 'cpu':
    return 'split'
  return default_conv_impl() if conv_impl == 'auto' else conv_impl


def make_model(name: str, num_classes: int, image_shape: tuple[int, ...],
               kernel_init: Initializer, conv_impl: str = 'auto') -> nn.Module:
  """Builds model `name`, checking it can take images of `image_shape`.

  conv_impl: 'xla', 'matmul', or 'auto' (see `default_conv_impl`).
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
