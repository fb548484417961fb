"""Outer loss and meta-gradients against the official PyTorch implementation.

The golden file (`../shared/golden/official_meta_grads.npz` from the repo
root, or $DDISTILL_GOLDEN; see its README.md) holds, for LeNet on MNIST and
AlexCifarNet on 32x32x3 inputs, the official code's initial weights, a
distilled set, a real batch, and the official outer loss and its gradients
with respect to every distilled image and raw learning rate, all in float64.
Ours must agree to 1e-10 relative, for every conv implementation, with the
real batch in one pass and in chunks (`distill.real_loss`).

PyTorch's layouts become ours: images NCHW -> NHWC, conv kernels OIHW ->
HWIO, linear weights [out, in] -> [in, out], and the first linear layer's
input rows from (C, H, W) order to the (H, W, C) order in which our models
flatten their features.
"""

import functools
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ddistill import distill
from ddistill import models
from ddistill.models import layers
from ddistill.models import nets

GOLDEN_ENV = 'DDISTILL_GOLDEN'
_REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
_DEFAULT_GOLDEN = (_REPO_ROOT / '..' / 'shared' / 'golden' /
                   'official_meta_grads.npz')
RTOL = 1e-10

# Golden key prefix -> (our model, PyTorch names of its two convs and three
# linear layers in order, (C, H, W) of the features the first linear reads).
NETS = {
    'lenet': ('lenet_mnist', nets.LeNet,
              ('conv1', 'conv2', 'fc1', 'fc2', 'fc3'), (16, 5, 5)),
    'alexcifarnet': ('alexcifarnet', nets.AlexCifarNet,
                     ('features.0', 'features.4', 'classifier.0',
                      'classifier.2', 'classifier.4'), (64, 8, 8)),
}


def _golden_path() -> pathlib.Path | None:
  env = os.environ.get(GOLDEN_ENV)
  for path in ([pathlib.Path(env)] if env else []) + [_DEFAULT_GOLDEN]:
    if path.is_file():
      return path
  return None


@pytest.fixture(scope='module')
def golden():
  path = _golden_path()
  if path is None:
    pytest.skip(f'no golden file: set ${GOLDEN_ENV} or put it at '
                f'{_DEFAULT_GOLDEN.resolve()}')
  with np.load(path) as z:
    return {k: z[k] for k in z.files}


def _one(golden: dict, prefix: str, stem: str) -> np.ndarray:
  """The array under `prefix/stem...` (keys end in their shape letters)."""
  keys = [k for k in golden if k.startswith(f'{prefix}/{stem}')]
  assert len(keys) == 1, (prefix, stem, keys)
  return golden[keys[0]]


def flax_params_from_torch(weights: dict, names: tuple[str, ...],
                           features_chw: tuple[int, int, int]) -> dict:
  """PyTorch {name.weight, name.bias} to our LeNet/AlexCifarNet param tree."""
  w = lambda n: weights[f'{n}.weight']
  b = lambda n: weights[f'{n}.bias']
  conv1, conv2, fc1, fc2, fc3 = names
  c, h, wd = features_chw
  # fc1 [out, C*H*W] with inputs in (c, h, w) order -> [H*W*C, out].
  fc1_in_out = w(fc1).reshape(-1, c, h, wd).transpose(2, 3, 1, 0).reshape(
      h * wd * c, -1)
  params = {
      'Conv_0': {'kernel': w(conv1).transpose(2, 3, 1, 0), 'bias': b(conv1)},
      'Conv_1': {'kernel': w(conv2).transpose(2, 3, 1, 0), 'bias': b(conv2)},
      'Dense_0': {'kernel': fc1_in_out, 'bias': b(fc1)},
      'Dense_1': {'kernel': w(fc2).T, 'bias': b(fc2)},
      'Dense_2': {'kernel': w(fc3).T, 'bias': b(fc3)},
  }
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)


@functools.partial(jax.jit, static_argnames=('apply_fn', 'real_apply_fn',
                                             'real_chunk'))
def _loss_and_meta_grads(distilled, params0, real_x, real_y, labels_SxN, *,
                         apply_fn, real_apply_fn, real_chunk):
  return jax.value_and_grad(distill.outer_loss)(
      distilled, params0, real_x, real_y, apply_fn=apply_fn,
      labels_SxN=labels_SxN, real_apply_fn=real_apply_fn,
      real_chunk=real_chunk)


def _rel_err(ours, gold) -> float:
  ours, gold = np.asarray(ours), np.asarray(gold)
  assert ours.shape == gold.shape, (ours.shape, gold.shape)
  return float(np.abs(ours - gold).max() / np.abs(gold).max())


# 48 real images at a time: the golden batches (128 and 64) end in a
# shorter chunk.
@pytest.mark.parametrize('real_chunk', [0, 48])
@pytest.mark.parametrize('conv_impl', layers.CONV_IMPLS)
@pytest.mark.parametrize('net', sorted(NETS))
def test_meta_grads_match_official(golden, net, conv_impl, real_chunk):
  """`conv_impl` runs both the inner steps and the real batch's pass."""
  prefix, model_cls, names, features_chw = NETS[net]
  with jax.enable_x64(True):
    weights = {k.split('/w/', 1)[1]: v for k, v in golden.items()
               if k.startswith(f'{prefix}/w/')}
    params0 = flax_params_from_torch(weights, names, features_chw)
    to_nhwc = lambda a: jnp.asarray(np.moveaxis(a, -3, -1), jnp.float64)
    distilled = {
        'images': to_nhwc(_one(golden, prefix, 'images_')),
        'raw_lrs': jnp.asarray(_one(golden, prefix, 'raw_lrs_'), jnp.float64),
    }
    # Class-major, as the official code orders them; passed as they are.
    labels_SxN = jnp.asarray(_one(golden, prefix, 'labels_'), jnp.int32)
    real_x = to_nhwc(_one(golden, prefix, 'real_x_'))
    real_y = jnp.asarray(_one(golden, prefix, 'real_y_'), jnp.int32)
    assert distilled['images'].shape[:2] == labels_SxN.shape
    assert distilled['raw_lrs'].shape[0] % labels_SxN.shape[0] == 0

    # Dropout is off in the golden run; our models have none.
    model = model_cls(num_classes=10, conv_impl=conv_impl)
    # The real batch goes through the first-order apply, as train.py builds
    # it (models.first_order_conv_impl), here with the same implementation.
    real_model = model.clone(
        conv_impl=models.first_order_conv_impl(conv_impl, conv_impl, net))
    loss, grads = _loss_and_meta_grads(
        distilled, params0, real_x, real_y, labels_SxN,
        apply_fn=models.Apply(model), real_apply_fn=models.Apply(real_model),
        real_chunk=real_chunk)
    assert loss.dtype == jnp.float64
    assert grads['images'].dtype == jnp.float64

    errors = {
        'loss': _rel_err(loss, golden[f'{prefix}/loss']),
        'grad_images': _rel_err(np.moveaxis(np.asarray(grads['images']), -1,
                                            -3),
                                _one(golden, prefix, 'grad_images_')),
        'grad_raw_lrs': _rel_err(grads['raw_lrs'],
                                 _one(golden, prefix, 'grad_raw_lrs_')),
    }
  print(f'{net}/{conv_impl}/chunk {real_chunk} max relative errors: '
        f'{errors}')
  assert all(e <= RTOL for e in errors.values()), errors
