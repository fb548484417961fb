r"""Times the first-order convolutions that evaluation trains with, on CPU.

  python benchmarks/eval_convs.py

Evaluation trains each held-out model inside `lax.map` and `lax.scan`, that
is inside XLA while loops, and tests it on thousands of images. Prints, in
ms (the minimum of --repeats calls after compilation):
  - a conv kernel gradient (AlexCifarNet's conv2 on 10 images), ten times in
    a fori_loop, as XLA's transposed conv and as an im2col matmul;
  - LeNet's conv1 forward pass on 1,024 images, as a sum of shifted outer
    products (what 'split' ran before 2026-11-26, kept here to compare) and
    as banded matmuls;
  - 10 steps of AlexCifarNet training on 10 images with the 'split' convs
    (the path evaluation runs), in a scan.
"""

import sys
import time

from absl import flags
import jax
import jax.numpy as jnp

sys.path.insert(0, '.')  # Run from the repo root without installing.
from ddistill import distill  # pylint: disable=g-import-not-at-top
from ddistill import inits
from ddistill import models
from ddistill.models import layers
from experiments import flags as experiment_flags

_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed calls per figure.',
                                lower_bound=1)


def conv_as_shifted_sum(x_BxHxWxC: jax.Array, kernel_KxKxCxO: jax.Array,
                        pad: int) -> jax.Array:
  """A stride-1 convolution as a sum of kh * kw products of shifted slices.

  With one input channel each product is an outer product, so XLA fuses the
  whole convolution into one elementwise loop that copies no patches.
  """
  kh, kw, _, _ = kernel_KxKxCxO.shape
  x = jnp.pad(x_BxHxWxC, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  return sum(x[:, i:i + h, j:j + w, :] @ kernel_KxKxCxO[i, j]
             for i in range(kh) for j in range(kw))


def _ms(fn, *args) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * min(times)


def _kernel_grad_in_loop(conv):
  def step(_, carry):
    x, kernel, g = carry
    dk = jax.linear_transpose(lambda k: conv(x, k, 2), kernel)(g)[0]
    return x, kernel - 1e-3 * dk, g * 1.001 + dk.mean()
  return jax.jit(lambda c: jax.lax.fori_loop(0, 10, step, c))


def main(argv):
  del argv
  keys = jax.random.split(jax.random.key(0), 7)
  carry = (jax.random.normal(keys[0], (10, 16, 16, 64)),
           0.01 * jax.random.normal(keys[1], (5, 5, 64, 64)),
           jax.random.normal(keys[2], (10, 16, 16, 64)))
  for name, conv in (('xla', layers.conv_xla),
                     ('im2col', layers.conv_as_matmul)):
    print(f'kernel_grad_x10_in_loop {name}: '
          f'{_ms(_kernel_grad_in_loop(conv), carry):.1f} ms')

  x = jax.random.normal(keys[4], (1024, 28, 28, 1))
  kernel = jax.random.normal(keys[5], (5, 5, 1, 6))
  for name, conv in (('shifted_sum', conv_as_shifted_sum),
                     ('banded', layers.conv_as_banded_matmul)):
    fwd = jax.jit(lambda x, k, conv=conv: jax.nn.relu(conv(x, k, 0)).sum())
    print(f'lenet_conv1_fwd_1024 {name}: {_ms(fwd, x, kernel):.1f} ms')

  shape = (32, 32, 3)
  model = models.make_model('alexcifarnet', 10, shape,
                            inits.kernel_initializer('xavier_normal'),
                            'split')
  apply_fn = models.Apply(model)
  params = jax.tree.map(lambda a: a[0],
                        inits.sample_params(model, keys[3], 1, shape))
  images = jax.random.normal(keys[6], (1, 10, *shape))
  labels, lrs = distill.distilled_labels(1, 10, 1), jnp.full(10, 0.02)
  train = jax.jit(lambda p: distill.train_on_distilled(
      apply_fn, p, images, labels, lrs, remat=False))
  print(f'alexcifarnet_10_steps_split: {_ms(train, params):.1f} ms')


experiment_flags.define(workdir=None)  # --traceback; errors as one line.

if __name__ == '__main__':
  experiment_flags.run(main)
