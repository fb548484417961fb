r"""The time setting (d)'s matmuls alone would take: a floor for its speed.

  python benchmarks/dot_floor.py --conv im2col
  python benchmarks/dot_floor.py --conv banded
  python benchmarks/dot_floor.py --conv im2col --dtype bfloat16

One GD step of the meta-gradient in setting (d) (LeNet, 100 images, the
inner step rematerialised) runs each layer's forward matmul, kernel-gradient
matmul and input-gradient matmul four times: once in the forward unroll, once
when the backward pass recomputes the step, twice in the backward pass of
the step's gradient. conv1's input gradient runs only in that last pass
(twice): elsewhere its input is the images, not a layer's output. This times
each of those matmuls alone, at its shape, 100 times in a compiled loop (no
dispatch between them), and adds them up per GD step. The whole step also
builds patches, pools, applies ReLU and copies; none of that is counted, so
the real step is slower than this. Last line:
`floor_ms_per_step=... floor_s_at_2000=...`.
"""

import sys
import time

from absl import flags
import jax
from jax import lax
import jax.numpy as jnp

sys.path.insert(0, '.')  # Run from the repo root without installing.
from experiments import flags as experiment_flags  # pylint: disable=g-import-not-at-top

_CONV = flags.DEFINE_enum('conv', 'banded', ['im2col', 'banded'],
                          'The matmul formulation of the convolutions.')
_IMAGES = flags.DEFINE_integer('images', 100, 'Images per GD step.',
                               lower_bound=1)
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'],
                           'Operand dtype; products accumulate in float32.')
_LOOPS = 100


def _ms(m: int, k: int, n: int, lhs_transposed: bool = False) -> float:
  """Milliseconds of one [m, k] @ [k, n] matmul ([k, m]^T @ [k, n] if
  lhs_transposed, as kernel gradients are), in a loop of `_LOOPS`."""
  dtype = jnp.dtype(_DTYPE.value)
  a = jnp.ones((k, m) if lhs_transposed else (m, k), dtype)
  b = jnp.ones((k, n), dtype)

  def loop(a, b):
    def body(_, acc_1xN):
      # Depends on the last product, so XLA cannot hoist it from the loop;
      # the compiled loop still computes the whole product, not one row.
      bb = (b + acc_1xN * 1e-30).astype(dtype)
      product = jnp.matmul(a.T if lhs_transposed else a, bb,
                           preferred_element_type=jnp.float32)
      return acc_1xN + product[:1]
    return lax.fori_loop(0, _LOOPS, body, jnp.zeros((1, n)))

  loop = jax.jit(loop)
  loop(a, b).block_until_ready()
  best = float('inf')
  for _ in range(5):
    t0 = time.perf_counter()
    loop(a, b).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return best / _LOOPS * 1e3


def main(argv):
  del argv
  b = _IMAGES.value
  # (rows, contraction, columns) of each layer's forward matmul.
  if _CONV.value == 'im2col':
    convs = {'conv1': (b * 28 * 28, 25, 6), 'conv2': (b * 10 * 10, 150, 16)}
  else:  # Row slabs times stacked bands (layers.conv_as_banded_matmul).
    convs = {'conv1': (b * 28, 5 * 32, 28 * 6),
             'conv2': (b * 10, 5 * 14 * 6, 10 * 16)}
  dense = {'fc1': (b, 400, 120), 'fc2': (b, 120, 84), 'fc3': (b, 84, 10)}
  total = 0.
  for name, (m, k, n) in {**convs, **dense}.items():
    forward, kernel_grad = _ms(m, k, n), _ms(k, m, n, lhs_transposed=True)
    input_grad = _ms(m, n, k)
    input_grads = 2 if name == 'conv1' else 4
    step = 4 * forward + 4 * kernel_grad + input_grads * input_grad
    total += step
    print(f'{name}: [{m}, {k}] @ [{k}, {n}]: forward {forward:.3f} ms, '
          f'kernel gradient {kernel_grad:.3f}, input gradient '
          f'{input_grad:.3f}; {step:.2f} ms per GD step')
  print(f'device={jax.devices()[0].device_kind} conv={_CONV.value} '
        f'images={b} dtype={_DTYPE.value}')
  print(f'floor_ms_per_step={total:.2f} floor_s_at_2000={total * 2:.1f}')


experiment_flags.define(workdir=None)  # --traceback; errors as one line.

if __name__ == '__main__':
  experiment_flags.run(main)
