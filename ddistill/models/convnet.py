"""ConvNet-3, the dataset-distillation field's standard network.

As in the DC/DSA code (Zhao et al.): `depth` blocks of 3x3 conv (`width`
channels, padding 1; the first pads grayscale images by 3, so that MNIST's
28x28 become 32x32 as there), instance norm, ReLU and 2x2 average pooling,
then one linear classifier. Instance norm normalizes each image's channels
over its own pixels: no batch statistics, so the inner training loop stays
a pure function of the images, as batch norm would not let it.
"""

import flax.linen as nn
import jax

from ddistill.models.layers import Conv, Initializer, avg_pool_2x2

# Three 2x2 poolings need at least 8x8 images (one pixel left).
MIN_SIZE = 8


def instance_norm() -> nn.GroupNorm:
  """One group per channel, with a learned scale and bias per channel;
  epsilon as torch's GroupNorm(channels, channels), which the DC code uses."""
  return nn.GroupNorm(num_groups=None, group_size=1, epsilon=1e-5)


class ConvNet(nn.Module):
  num_classes: int
  kernel_init: Initializer = nn.initializers.lecun_normal()
  conv_impl: str = 'xla'
  width: int = 128
  depth: int = 3

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    x = x_BxHxWxC
    for d in range(self.depth):
      pad = 3 if d == 0 and x.shape[-1] == 1 else 1
      x = Conv(self.width, 3, pad, self.kernel_init, self.conv_impl)(x)
      x = avg_pool_2x2(nn.relu(instance_norm()(x)))
    x = x.reshape(x.shape[0], -1)
    return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)
