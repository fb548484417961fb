"""The paper's networks, as the official code defines them.

No batch norm and no dropout: both would make the inner training loop
stochastic or stateful, and the paper disables them.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from ddistill.models.layers import Conv, ConvReluPoolBlocks, Initializer
from ddistill.models.layers import local_response_norm, max_pool_2x2
from ddistill.models.layers import space_to_depth


class LeNet(nn.Module):
  """LeNet-5 with ReLU and max-pooling; takes 28x28 (padded) or 32x32.

  conv_impl 'blocks' runs each conv-ReLU-pool on pixel blocks
  (`layers.conv_relu_pool_blocks`): the 32x32 input as 4x4 blocks, pooled
  to the 14x14 map in the 2x2 blocks the second layer reads, pooled to the
  5x5 map itself. Same parameters, same function.
  """
  num_classes: int
  kernel_init: Initializer = nn.initializers.lecun_normal()
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    dense = lambda n: nn.Dense(n, kernel_init=self.kernel_init)
    conv = lambda n, pad: Conv(n, 5, pad, self.kernel_init, self.conv_impl)
    pad = 2 if x_BxHxWxC.shape[1] == 28 else 0
    if self.conv_impl == 'blocks':
      x = jnp.pad(x_BxHxWxC, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
      x = ConvReluPoolBlocks(6, 5, 4, self.kernel_init, name='Conv_0')(
          space_to_depth(x, 4))  # [B, 7, 7, 2 * 2 * 6]
      x = ConvReluPoolBlocks(16, 5, 2, self.kernel_init, name='Conv_1')(x)
    else:
      x = max_pool_2x2(nn.relu(conv(6, pad)(x_BxHxWxC)))
      x = max_pool_2x2(nn.relu(conv(16, 0)(x)))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(dense(120)(x))
    x = nn.relu(dense(84)(x))
    return dense(self.num_classes)(x)


class AlexCifarNet(nn.Module):
  """The cuda-convnet CIFAR network (about 80% on CIFAR-10); takes 32x32."""
  num_classes: int
  kernel_init: Initializer = nn.initializers.lecun_normal()
  conv_impl: str = 'xla'

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    conv = lambda: Conv(64, 5, 2, self.kernel_init, self.conv_impl)
    pool = lambda x: nn.max_pool(x, (3, 3), strides=(2, 2),
                                 padding=((1, 1), (1, 1)))
    lrn = lambda x: local_response_norm(x, 4, alpha=0.001 / 9.0)
    x = lrn(pool(nn.relu(conv()(x_BxHxWxC))))
    x = pool(lrn(nn.relu(conv()(x))))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(384, kernel_init=self.kernel_init)(x))
    x = nn.relu(nn.Dense(192, kernel_init=self.kernel_init)(x))
    return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)


class MLP(nn.Module):
  """Fully connected ReLU network on flattened images."""
  num_classes: int
  hidden: tuple[int, ...] = (100, 100)
  kernel_init: Initializer = nn.initializers.lecun_normal()
  conv_impl: str = 'xla'  # Unused; keeps every model's signature alike.

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    x = x_BxHxWxC.reshape(x_BxHxWxC.shape[0], -1)
    for width in self.hidden:
      x = nn.relu(nn.Dense(width, kernel_init=self.kernel_init)(x))
    return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)
