"""Layers with CPU-fast gradients: convolutions, 2x2 pooling, LRN.

The inner loop differentiates through hundreds of steps, so each layer here
has forward and backward passes chosen for speed on the backend at hand;
every implementation computes the same function (tests compare them).
"""

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Initializer = Callable[..., jax.Array]
CONV_IMPLS = ('xla', 'matmul', 'banded', 'split', 'blocks')
# Above this many entries in one kernel row's band ([W*C, W'*O]), 'split'
# uses XLA's convolutions and 'banded' im2col.
_MAX_BAND_ENTRIES = 1 << 16
# Up to this many entries of im2col patches, 'split' takes a large layer's
# kernel gradient as a matmul: XLA's own (a convolution) runs many times
# slower on CPU inside a loop, as training's scans and lax.map are.
_MAX_PATCH_ENTRIES = 1 << 26


def conv_as_matmul(x_BxHxWxC: jax.Array, kernel_KxKxCxO: jax.Array,
                   pad: int) -> jax.Array:
  """A stride-1 convolution as one matmul over shifted slices (im2col).

  On CPU, XLA's convolutions (and their backward passes) are several times
  slower than this for LeNet-sized layers, and under vmap over the kernel
  this becomes a batched matmul rather than a grouped convolution.
  """
  kh, kw, c, o = kernel_KxKxCxO.shape
  x = jnp.pad(x_BxHxWxC, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  # Ordered (i, j, c) to match the kernel's [kh, kw, C, O] layout.
  patches_BxHxWxP = jnp.concatenate(
      [x[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)], -1)
  return patches_BxHxWxP @ kernel_KxKxCxO.reshape(kh * kw * c, o)


def _width_shift(kw: int, w: int, w_out: int, dtype) -> np.ndarray:
  """shift[j, w_in, w_out] = 1 where w_in == w_out + j: kernel column j."""
  return (np.arange(w)[None, :, None] == np.arange(w_out)[None, None, :]
          + np.arange(kw)[:, None, None]).astype(dtype)


def _row_slabs(x_BxHxWxC: jax.Array, kh: int) -> jax.Array:
  """[B, H - kh + 1, kh * W * C]: for each output row, the kh input rows it
  reads, side by side (a copy of the input kh times, not kh * kw as im2col)."""
  b, h, w, c = x_BxHxWxC.shape
  rows_BxHxWC = x_BxHxWxC.reshape(b, h, w * c)
  return jnp.concatenate([rows_BxHxWC[:, i:i + h - kh + 1] for i in range(kh)],
                         -1)


def conv_as_banded_matmul(x_BxHxWxC: jax.Array, kernel_KxKxCxO: jax.Array,
                          pad: int) -> jax.Array:
  """A stride-1 convolution as one matmul with a banded (Toeplitz) matrix.

  Kernel row i becomes a band [W*C, W'*O] that applies the row across the
  width; stacked, the kh bands multiply the row slabs (`_row_slabs`). This
  does more FLOPs than im2col but copies far less, which on CPU is what
  costs. One matmul rather than one per kernel row: XLA would add up the kh
  products again inside each consumer it fuses them into. Under vmap over
  the kernel with a shared input, it is still one (wider) matmul.
  """
  kh, kw, c, o = kernel_KxKxCxO.shape
  x = jnp.pad(x_BxHxWxC, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  b, h, w, _ = x.shape
  h_out, w_out = h - kh + 1, w - kw + 1
  bands = jnp.einsum('jpw,ijco->ipcwo', _width_shift(kw, w, w_out, x.dtype),
                     kernel_KxKxCxO).reshape(kh * w * c, w_out * o)
  y = _row_slabs(x, kh) @ bands
  return y.reshape(b, h_out, w_out, o)


def conv_xla(x_BxHxWxC: jax.Array, kernel_KxKxCxO: jax.Array,
             pad: int) -> jax.Array:
  return jax.lax.conv_general_dilated(
      x_BxHxWxC, kernel_KxKxCxO, (1, 1), [(pad, pad)] * 2,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def conv_kernel_grad_by_rows(x_BxHxWxC: jax.Array, g_BxHoxWoxO: jax.Array,
                             kernel_shape: tuple[int, ...],
                             pad: int) -> jax.Array:
  """The gradient of a stride-1 conv with respect to its kernel, by rows.

  The transpose of `conv_as_banded_matmul` in the kernel, written out as one
  matmul of the row slabs with the output gradient, contracting over images
  and output rows: [kh*W*C, B*Ho] @ [B*Ho, Wo*O]. The kw diagonals of each
  kernel row's block are the kernel's columns. XLA's own transpose of the
  banded conv (and its convolution) copy and reorder much more on CPU.
  """
  kh, kw, c, o = kernel_shape
  x = jnp.pad(x_BxHxWxC, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  b, h, w, _ = x.shape
  h_out, w_out = h - kh + 1, w - kw + 1
  g_BxHoxWoO = g_BxHoxWoxO.reshape(b, h_out, w_out * o)
  m = jnp.einsum('bhp,bhq->pq', _row_slabs(x, kh), g_BxHoxWoO)
  m = m.reshape(kh, w, c, w_out, o)
  return jnp.einsum('jpw,ipcwo->ijco', _width_shift(kw, w, w_out, m.dtype), m)


def band_is_small(x_shape: tuple[int, ...], kernel_shape: tuple[int, ...],
                  pad: int) -> bool:
  """Whether one kernel row's band [W*C, W'*O] has at most
  `_MAX_BAND_ENTRIES` entries: wider layers' bands are mostly zeros, and
  im2col or XLA's conv beat them."""
  _, kw, c, o = kernel_shape
  w = x_shape[2] + 2 * pad
  return w * c * (w - kw + 1) * o <= _MAX_BAND_ENTRIES


def _split_impls(x_shape: tuple[int, ...], kernel_shape: tuple[int, ...],
                 pad: int):
  """(forward, kernel-gradient, input-gradient) for `conv_split`.

  forward and input-gradient are one conv (x, kernel, pad) -> y, banded
  for small layers and XLA's otherwise; the kernel-gradient maps
  (x, g, kernel) -> dkernel (pad bound here). The fastest of each measured
  on CPU for LeNet's layers on a 1,024-image batch (benchmarks/README.md);
  large layers keep XLA's convolutions, but for the kernel gradient of
  batches whose patches fit in memory.
  """
  kh, kw, c, _ = kernel_shape
  w = x_shape[2] + 2 * pad
  small = band_is_small(x_shape, kernel_shape, pad)
  conv = conv_as_banded_matmul if small else conv_xla

  def transposed(conv_in_kernel):
    def kernel_grad(x, g, kernel):
      # Transposed at the kernel itself, not at zeros: inside shard_map the
      # gradient must keep the kernel's type (varying over the models' axis).
      return jax.linear_transpose(lambda k: conv_in_kernel(x, k, pad),
                                  kernel)(g)[0]
    return kernel_grad

  def kernel_grad_by_rows(x, g, kernel):
    return conv_kernel_grad_by_rows(x, g, kernel.shape, pad)

  h_out = x_shape[1] + 2 * pad - kh + 1
  patches = x_shape[0] * h_out * (w - kw + 1) * kh * kw * c
  if small:
    kernel_grad = kernel_grad_by_rows
  elif patches <= _MAX_PATCH_ENTRIES:
    kernel_grad = transposed(conv_as_matmul)
  else:
    kernel_grad = transposed(conv_xla)
  return conv, kernel_grad, conv


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_split(x_BxHxWxC: jax.Array, kernel_KxKxCxO: jax.Array,
               pad: int) -> jax.Array:
  """A stride-1 convolution whose passes each use their fastest formulation.

  The forward pass and the two gradients are the same convolution computed
  three ways (`_split_impls`). Its backward pass is plain JAX, so it can be
  differentiated again, but slowly: use it where the network is
  differentiated once (the real batch of the outer loss, evaluation).
  """
  forward, _, _ = _split_impls(x_BxHxWxC.shape, kernel_KxKxCxO.shape, pad)
  return forward(x_BxHxWxC, kernel_KxKxCxO, pad)


def _conv_split_fwd(x_BxHxWxC, kernel_KxKxCxO, pad):
  return conv_split(x_BxHxWxC, kernel_KxKxCxO, pad), (x_BxHxWxC,
                                                      kernel_KxKxCxO)


def _conv_split_bwd(pad, residuals, g_BxHxWxO):
  x, kernel = residuals
  _, kernel_grad, input_grad = _split_impls(x.shape, kernel.shape, pad)
  dkernel = kernel_grad(x, g_BxHxWxO, kernel)
  # The convolution is linear in x; its transpose is the VJP.
  dx, = jax.linear_transpose(lambda x: input_grad(x, kernel, pad),
                             x)(g_BxHxWxO)
  return dx, dkernel


conv_split.defvjp(_conv_split_fwd, _conv_split_bwd)


class Conv(nn.Module):
  """Stride-1 'same'-style conv with symmetric zero padding.

  Holds the same parameters as `nn.Conv` ('kernel' [kh, kw, C, O] and
  'bias' [O]), so either implementation runs the same weights. impl
  'banded' runs a layer whose band is not small (`band_is_small`) as
  im2col ('matmul'); so does 'blocks', which only LeNet's conv-ReLU-pool
  pairs take (`ConvReluPoolBlocks`).
  """
  features: int
  kernel_size: int
  padding: int
  kernel_init: Initializer
  impl: str = 'xla'

  @nn.compact
  def __call__(self, x_BxHxWxC: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param('kernel', self.kernel_init,
                        (k, k, x_BxHxWxC.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    x_BxHxWxC, kernel, bias = nn.dtypes.promote_dtype(x_BxHxWxC, kernel, bias)
    impls = {'matmul': conv_as_matmul, 'banded': conv_as_banded_matmul,
             'xla': conv_xla, 'split': conv_split}
    impl = self.impl
    if impl == 'blocks' or (impl == 'banded' and not band_is_small(
        x_BxHxWxC.shape, kernel.shape, self.padding)):
      impl = 'matmul'
    if impl not in impls:
      raise ValueError(f'unknown conv impl {self.impl!r}; known: {CONV_IMPLS}')
    return impls[impl](x_BxHxWxC, kernel, self.padding) + bias


def space_to_depth(x_BxHxWxC: jax.Array, block: int) -> jax.Array:
  """[B, H, W, C] -> [B, H / block, W / block, block * block * C]: each
  block x block square of pixels becomes one pixel, its channels ordered
  (row, column, channel)."""
  b, h, w, c = x_BxHxWxC.shape
  if h % block or w % block:
    raise ValueError(f'space_to_depth: {h}x{w} is not a whole number of '
                     f'{block}x{block} blocks')
  x = x_BxHxWxC.reshape(b, h // block, block, w // block, block, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h // block, w // block,
                                                block * block * c)


def _blocks_read(block: int, k: int) -> int:
  """How many blocks each way a tile of block x block outputs of a k x k
  stride-1 conv reads: ceil((block + k - 1) / block)."""
  return -(-(block + k - 1) // block)


def block_conv_kernel(kernel_KxKxCxO: jax.Array, block: int) -> jax.Array:
  """A stride-1 conv's kernel as one matrix from the input blocks a tile of
  block x block output pixels reads to those pixels: [span^2 * block^2 * C,
  block^2 * O], with span = `_blocks_read(block, K)` blocks each way.

  Rows are ordered (block row, block column, pixel row, pixel column,
  channel), as `conv_relu_pool_blocks` lays out its patches. Columns are
  ordered (di, dj, a, b, o) for output pixel (2a + di, 2b + dj), so the
  tile's 2x2 max-pool is a max over four contiguous column groups.
  """
  k, _, c, o = kernel_KxKxCxO.shape
  span = _blocks_read(block, k)
  half = block // 2
  n, p, t, i = np.ogrid[:span, :block, :block, :k]
  # taps[n, p, t, i] = 1 where pixel p of the n-th block a tile reads
  # reaches the tile's output pixel t through kernel tap i.
  taps = (block * n + p - t == i).astype(np.float32).reshape(
      span, block, half, 2, k)
  # Each entry is one kernel value or 0: exact at full precision.
  w = jnp.einsum('xpadk,yqbel,klco->xypqcdeabo', taps, taps, kernel_KxKxCxO,
                 precision=jax.lax.Precision.HIGHEST)
  return w.reshape(span * span * block * block * c, block * block * o)


def conv_relu_pool_blocks(x_BxGxGxD: jax.Array, kernel_KxKxCxO: jax.Array,
                          bias_O: jax.Array, block: int) -> jax.Array:
  """An unpadded stride-1 conv, ReLU and 2x2 max-pool, on and to blocks.

  x_BxGxGxD: the input in blocks (`space_to_depth`, D = block^2 * C).
  Returns the pooled output in blocks of block / 2 pixels: [B, G', G',
  (block / 2)^2 * O]. Each output tile of block x block pixels is one row
  of a matmul of the span x span input blocks it reads (im2col over
  blocks): for LeNet 2.6x (conv1) and 1.4x (conv2) the direct
  convolution's FLOPs, against 6.4x and 2.8x as bands, in matmuls of a
  useful shape ([B*49, 64] @ [64, 96], not im2col's [B*784, 25] @ [25, 6]).
  The pool's gradient is autodiff's of `max`: tied maxima share it. But
  each output adds its taps in an order that depends on its place in the
  tile, so equal windows (a flat image region) can differ in the last bit:
  their maxima are then not tied, and the gradient goes to one of them.
  """
  k, _, c, o = kernel_KxKxCxO.shape
  b, g, _, d = x_BxGxGxD.shape
  span = _blocks_read(block, k)
  # (k - 1) % block: the last tiles' windows would run past the input.
  if d != block * block * c or block % 2 or (k - 1) % block:
    raise ValueError(f'conv_relu_pool_blocks: blocks of {block} pixels '
                     f'cannot carry a {k}x{k} kernel over {c} channels from '
                     f'input {x_BxGxGxD.shape}')
  g_out = g - span + 1
  patches = jnp.concatenate([x_BxGxGxD[:, i:i + g_out, j:j + g_out]
                             for i in range(span) for j in range(span)], -1)
  half = block // 2
  # As one 2-D matmul: on CPU, XLA differentiates it with fewer transposing
  # copies than [B, G', G', D'] @ [D', N] (measured in benchmarks/README.md;
  # im2col's matmul was not faster so).
  y = patches.reshape(-1, patches.shape[-1]) @ block_conv_kernel(
      kernel_KxKxCxO, block)
  y = y.reshape(b, g_out, g_out, 4, half * half, o) + bias_O
  y = jax.nn.relu(y).reshape(b, g_out, g_out, 4, half * half * o)
  return _max_of_four(y)


@jax.custom_vjp
def _max_of_four(x_BxGxGx4xD: jax.Array) -> jax.Array:
  return x_BxGxGx4xD.max(axis=-2)


def _max_of_four_fwd(x):
  y = _max_of_four(x)
  return y, (x, y)


def _max_of_four_bwd(residuals, g):
  # Autodiff's gradient of max (ties share it), as one mask and one count:
  # faster on CPU than autodiff's passes over the reduced axis.
  x, y = residuals
  hit = x == y[..., None, :]
  count = sum((x[..., i, :] == y).astype(x.dtype) for i in range(4))
  return (jnp.where(hit, (g / count)[..., None, :], 0.),)


_max_of_four.defvjp(_max_of_four_fwd, _max_of_four_bwd)


class ConvReluPoolBlocks(nn.Module):
  """`conv_relu_pool_blocks` with `Conv`'s parameters ('kernel', 'bias'),
  so it runs the same weights as a `Conv` followed by ReLU and
  `max_pool_2x2`."""
  features: int
  kernel_size: int
  block: int
  kernel_init: Initializer

  @nn.compact
  def __call__(self, x_BxGxGxD: jax.Array) -> jax.Array:
    k = self.kernel_size
    channels = x_BxGxGxD.shape[-1] // (self.block * self.block)
    kernel = self.param('kernel', self.kernel_init,
                        (k, k, channels, self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    x_BxGxGxD, kernel, bias = nn.dtypes.promote_dtype(x_BxGxGxD, kernel,
                                                      bias)
    return conv_relu_pool_blocks(x_BxGxGxD, kernel, bias, self.block)


@jax.custom_vjp
def max_pool_2x2(x_BxHxWxC: jax.Array) -> jax.Array:
  """2x2 max-pool, stride 2, as a reshape (an odd last row or column is cut).

  Its gradient is the one autodiff of `max` gives: tied maxima share it
  (ties are common: a flat image region gives equal activations). Written
  by hand it is one mask and one count, several times faster on CPU than
  the autodiff, which reduces over the window axes in several passes.
  """
  b, h, w, c = x_BxHxWxC.shape
  return x_BxHxWxC[:, :h // 2 * 2, :w // 2 * 2].reshape(
      b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _max_pool_fwd(x_BxHxWxC):
  y = max_pool_2x2(x_BxHxWxC)
  return y, (x_BxHxWxC, y)


def _max_pool_bwd(residuals, g_BxHxWxC):
  x, y = residuals
  b, h, w, c = x.shape
  h2, w2 = h // 2 * 2, w // 2 * 2
  x6 = x[:, :h2, :w2].reshape(b, h // 2, 2, w // 2, 2, c)
  hit = x6 == y[:, :, None, :, None]
  # Counted as four slices: XLA's CPU reductions over these axes are slow.
  count = sum((x6[:, :, i, :, j] == y).astype(x.dtype)
              for i in (0, 1) for j in (0, 1))
  share = (g_BxHxWxC / count)[:, :, None, :, None]
  dx = jnp.where(hit, share, 0.).reshape(b, h2, w2, c)
  return (jnp.pad(dx, ((0, 0), (0, h - h2), (0, w - w2), (0, 0))),)


max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)


def avg_pool_2x2(x_BxHxWxC: jax.Array) -> jax.Array:
  """2x2 average-pool, stride 2, as a reshape (an odd last row or column is
  cut, as torch's AvgPool2d(2) does)."""
  b, h, w, c = x_BxHxWxC.shape
  return x_BxHxWxC[:, :h // 2 * 2, :w // 2 * 2].reshape(
      b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def local_response_norm(x_BxHxWxC: jax.Array, size: int = 4,
                        alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> jax.Array:
  """PyTorch's LocalResponseNorm over the channel axis (NHWC).

  Divides by (k + alpha * mean of squares over a window of `size` channels),
  the window padded with zeros: size // 2 before, (size - 1) // 2 after.
  """
  sq = jnp.square(x_BxHxWxC)
  padded = jnp.pad(sq, [(0, 0)] * 3 + [(size // 2, (size - 1) // 2)])
  channels = x_BxHxWxC.shape[-1]
  window_sum = sum(padded[..., i:i + channels] for i in range(size))
  return x_BxHxWxC / (k + alpha * window_sum / size)**beta
