"""AlexNet (torchvision's layout) and ImageNet weights for it (Table 3).

The paper adapts an ImageNet-pretrained AlexNet to PASCAL-VOC and CUB-200.
Weights come from a file the user supplies: an `.npz` holding torchvision's
`state_dict` names and layouts (`features.0.weight` [O, I, kh, kw], ...,
`classifier.6.bias`), as `experiments/convert_torchvision_alexnet.py`
writes it.
The package never needs torch. No dropout: the inner loop is deterministic.
"""

import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ddistill.errors import DataError

Initializer = Any

# (flax layer, torchvision prefix, kernel size, stride, padding, features).
CONVS = (('conv1', 'features.0', 11, 4, 2, 64),
         ('conv2', 'features.3', 5, 1, 2, 192),
         ('conv3', 'features.6', 3, 1, 1, 384),
         ('conv4', 'features.8', 3, 1, 1, 256),
         ('conv5', 'features.10', 3, 1, 1, 256))
DENSES = (('fc6', 'classifier.1', 4096), ('fc7', 'classifier.4', 4096),
          ('fc8', 'classifier.6', None))  # fc8: one output per class.
POOLED = 6  # torchvision's AdaptiveAvgPool2d((6, 6)) before the classifier.
MIN_SIZE = 63  # Smallest input that leaves a 1x1 map after conv5's pool.
# ImageNet's channel mean and std, the normalization the weights expect.


def adaptive_avg_pool(x_BxHxWxC: jax.Array, out: int) -> jax.Array:
  """PyTorch's AdaptiveAvgPool2d: bin i spans [floor(iH/out), ceil((i+1)H/out))."""
  def pool_axis(x, axis):
    size = x.shape[axis]
    bins = [jnp.mean(jax.lax.slice_in_dim(
        x, (i * size) // out, -(-((i + 1) * size) // out), axis=axis),
        axis=axis, keepdims=True) for i in range(out)]
    return jnp.concatenate(bins, axis=axis)
  return pool_axis(pool_axis(x_BxHxWxC, 1), 2)


class AlexNet(nn.Module):
  """torchvision's AlexNet without dropout; takes images of 63 px and up."""
  num_classes: int
  kernel_init: Initializer = nn.initializers.lecun_normal()
  conv_impl: str = 'xla'  # Unused: strided convs stay XLA's.

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    pool = lambda x: nn.max_pool(x, (3, 3), strides=(2, 2))
    x = x_BxHxWxC
    for i, (name, _, k, stride, pad, features) in enumerate(CONVS):
      x = nn.relu(nn.Conv(features, (k, k), (stride, stride),
                          padding=[(pad, pad)] * 2,
                          kernel_init=self.kernel_init, name=name)(x))
      if i in (0, 1, 4):
        x = pool(x)
    x = adaptive_avg_pool(x, POOLED)
    x = x.reshape(x.shape[0], -1)  # (h, w, c) order; the loader permutes fc6.
    for name, _, features in DENSES:
      x = nn.Dense(features or self.num_classes, kernel_init=self.kernel_init,
                   name=name)(x)
      if name != 'fc8':
        x = nn.relu(x)
    return x


def _expected_shapes(num_classes: int = 1000) -> dict[str, tuple[int, ...]]:
  shapes, channels = {}, 3
  for _, prefix, k, _, _, features in CONVS:
    shapes[f'{prefix}.weight'] = (features, channels, k, k)
    shapes[f'{prefix}.bias'] = (features,)
    channels = features
  inputs = channels * POOLED * POOLED
  for _, prefix, features in DENSES:
    features = features or num_classes
    shapes[f'{prefix}.weight'] = (features, inputs)
    shapes[f'{prefix}.bias'] = (features,)
    inputs = features
  return shapes


def read_torchvision_npz(path: str) -> dict[str, np.ndarray]:
  """torchvision AlexNet weights from an `.npz`, checked name by name."""
  if not os.path.exists(path):
    raise DataError(f'{path}: file not found (convert torchvision weights '
                    'with experiments/convert_torchvision_alexnet.py)')
  try:
    with np.load(path) as f:
      state = {k: np.asarray(f[k], np.float32) for k in f.files}
  except Exception as e:  # Truncated or not an npz.
    raise DataError(f'{path}: not a readable .npz ({type(e).__name__}: '
                    f'{e})') from None
  head = DENSES[-1][1]  # The classifier's output size is free.
  for name, shape in _expected_shapes().items():
    if name not in state:
      raise DataError(f'{path}: no {name!r} (expected torchvision AlexNet '
                      'state_dict names)')
    got = state[name].shape
    if name.startswith(head):
      outputs = state[f'{head}.weight'].shape[0]
      shape = (outputs,) + shape[1:]
    if got != shape:
      raise DataError(f'{path}: {name} has shape {got}, AlexNet needs '
                      f'{shape}')
  return state


def params_from_torchvision(state: dict[str, np.ndarray], num_classes: int,
                            key: jax.Array,
                            kernel_init: Initializer = None,
                            new_classifier: str = 'official') -> dict:
  """Flax params of `AlexNet(num_classes)` from torchvision's state_dict.

  Convolutions go from [O, I, kh, kw] to [kh, kw, I, O]; dense layers from
  [out, in] to [in, out]; fc6's inputs from torch's (c, h, w) flattening to
  ours (h, w, c). The classifier fc8 is new unless the file's already has
  `num_classes` outputs. new_classifier: 'official' starts it as the official
  code does, zero weights and bias 1 (the same for every key); 'random', a
  draw of `kernel_init` from `key` with zero bias.
  """
  params = {}
  for name, prefix, *_ in CONVS:
    params[name] = {'kernel': state[f'{prefix}.weight'].transpose(2, 3, 1, 0),
                    'bias': state[f'{prefix}.bias']}
  w6 = state['classifier.1.weight']
  channels = CONVS[-1][-1]
  params['fc6'] = {
      'kernel': w6.reshape(-1, channels, POOLED, POOLED).transpose(
          2, 3, 1, 0).reshape(POOLED * POOLED * channels, -1),
      'bias': state['classifier.1.bias']}
  params['fc7'] = {'kernel': state['classifier.4.weight'].T,
                   'bias': state['classifier.4.bias']}
  w8 = state['classifier.6.weight']
  if w8.shape[0] == num_classes:
    params['fc8'] = {'kernel': w8.T, 'bias': state['classifier.6.bias']}
  elif new_classifier == 'official':
    params['fc8'] = {'kernel': np.zeros((w8.shape[1], num_classes)),
                     'bias': np.ones(num_classes)}
  elif new_classifier == 'random':
    kernel_init = kernel_init or nn.initializers.xavier_normal()
    params['fc8'] = {
        'kernel': np.asarray(kernel_init(key, (w8.shape[1], num_classes))),
        'bias': np.zeros(num_classes, np.float32)}
  else:
    raise ValueError(f'unknown new_classifier {new_classifier!r}; use '
                     '"official" or "random"')
  return jax.tree.map(lambda a: np.ascontiguousarray(a, np.float32), params)
