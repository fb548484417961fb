"""ResNet-18 with group norm, for the continual-learning CIFAR-100 stream.

Batch norm's running statistics do not fit GD steps that are differentiated
through (the paper's appendix), so every norm is a GroupNorm. `width` is the
first stage's channels (64 in ResNet-18; GEM's reduced version uses 20).
"""

import math
from typing import Callable

import flax.linen as nn
import jax

Initializer = Callable[..., jax.Array]


def _norm(channels: int) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=math.gcd(channels, 32))


class BasicBlock(nn.Module):
  features: int
  stride: int
  kernel_init: Initializer

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    conv = lambda f, k, s: nn.Conv(f, (k, k), (s, s), padding='SAME' if k > 1
                                   else 'VALID', use_bias=False,
                                   kernel_init=self.kernel_init)
    y = nn.relu(_norm(self.features)(conv(self.features, 3, self.stride)(
        x_BxHxWxC)))
    y = _norm(self.features)(conv(self.features, 3, 1)(y))
    shortcut = x_BxHxWxC
    if self.stride != 1 or x_BxHxWxC.shape[-1] != self.features:
      shortcut = _norm(self.features)(conv(self.features, 1, self.stride)(
          x_BxHxWxC))
    return nn.relu(y + shortcut)


class ResNet18GN(nn.Module):
  num_classes: int
  kernel_init: Initializer = nn.initializers.lecun_normal()
  conv_impl: str = 'xla'  # Unused; keeps every model's signature alike.
  width: int = 20
  blocks: tuple[int, ...] = (2, 2, 2, 2)

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    x = nn.Conv(self.width, (3, 3), padding='SAME', use_bias=False,
                kernel_init=self.kernel_init)(x_BxHxWxC)
    x = nn.relu(_norm(self.width)(x))
    for stage, num_blocks in enumerate(self.blocks):
      for i in range(num_blocks):
        stride = 2 if stage > 0 and i == 0 else 1
        x = BasicBlock(self.width * 2**stage, stride, self.kernel_init)(x)
    x = x.mean(axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)
