"""The choices made on GPU and TPU, forced on CPU, compute what CPU's do.

On an accelerator the engine runs XLA's convolutions, `vmap`s the inits of an
iteration, passes the real batch in one go, and trains held-out models in
vmapped chunks of 16; on CPU it picks its own conv paths, `lax.map`, the real
batch in chunks (`distill.real_loss`) and one model at a time. These tests run
both on CPU and compare the outer loss, the meta-gradients and the held-out
accuracies.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ddistill import distill
from ddistill import evaluate
from ddistill import inits
from ddistill import models

def _model(impl, name='lenet', shape=(28, 28, 1)):
  return models.make_model(name, 10, shape,
                           inits.kernel_initializer('xavier_normal'), impl)


def _meta_step(choice, x, y, num_inits=4):
  """Loss and meta-gradients of one outer iteration under `choice`."""
  inner = _model(choice['conv_impl'])
  first = inner.clone(conv_impl=models.first_order_conv_impl(
      choice['first_order'], choice['conv_impl'], 'lenet'))
  keys = jax.random.split(jax.random.key(0), 2)
  params0_I = inits.sample_params(inner, keys[0], num_inits, (28, 28, 1))
  labels = distill.distilled_labels(1, 10, 2)
  distilled = distill.init_distilled(keys[1], labels, (28, 28, 1), 3, 0.02,
                                     'real', x, y)
  loss_fn = functools.partial(
      distill.mean_outer_loss, apply_fn=models.Apply(inner),
      labels_SxN=labels, batching=choice['batching'],
      real_apply_fn=models.Apply(first), real_chunk=choice['real_chunk'])
  return jax.jit(jax.value_and_grad(loss_fn))(distilled, params0_I, x[:256],
                                              y[:256])


def test_gpu_choices_give_the_cpu_meta_gradient(mnist):
  x, y = mnist.train_images[:2048], mnist.train_labels[:2048]
  gpu = {'conv_impl': 'xla', 'first_order': 'xla', 'batching': 'vmap',
         'real_chunk': 0}
  # 256 real images: two chunks of CPU's 128.
  cpu = {'conv_impl': 'auto', 'first_order': 'auto', 'batching': 'map',
         'real_chunk': distill.CPU_REAL_CHUNK}
  (loss_g, grads_g), (loss_c, grads_c) = (_meta_step(c, x, y)
                                          for c in (gpu, cpu))
  np.testing.assert_allclose(loss_g, loss_c, rtol=1e-5)
  for name in ('images', 'raw_lrs'):
    scale = float(jnp.abs(grads_c[name]).max())
    assert scale > 0
    np.testing.assert_allclose(grads_g[name], grads_c[name], rtol=1e-3,
                               atol=1e-4 * scale)


def test_gpu_chunks_of_models_give_the_cpu_accuracies(mnist):
  # A set that trains well above chance, so equal accuracies say something:
  # 5 real images per class, 20 small steps; 18 held-out models make one
  # chunk of 16 and one of 2 plus padding.
  x, y = mnist.train_images, mnist.train_labels
  picks = np.concatenate([np.flatnonzero(y == k)[:5] for k in range(10)])
  images, labels = x[picks][None], y[picks][None]
  lrs = np.full(20, 0.02, np.float32)
  test_x, test_y = mnist.test_images[:1000], mnist.test_labels[:1000]
  accs = {}
  # The conv paths are compared above; here only the batching of models
  # differs (XLA's convs under vmap are grouped convs, slow on CPU).
  model = _model(models.first_order_conv_impl('auto', 'auto', 'lenet'))
  for name, per_batch in (('gpu', 16), ('cpu', None)):
    params0_M = inits.sample_params(model, jax.random.key(1), 18, (28, 28, 1))
    apply_fn = models.Apply(model)
    accs[name] = evaluate.evaluate_set(apply_fn, params0_M, images, labels,
                                       lrs, test_x, test_y,
                                       per_batch=per_batch)
    accs[name + '_fixed'] = evaluate.evaluate_fixed_lr(
        apply_fn, params0_M, x[picks], y[picks], 0.02, [20], test_x, test_y,
        per_batch=per_batch)
  assert accs['cpu'].mean() > 0.2  # Twice chance: the test can tell.
  # The same trained nets up to float rounding, which may flip a few test
  # images of one net, never many. (Larger steps, 10 at lr 0.05, grew the
  # rounding of one net's batched convs into a gap of 6 points.)
  for key in ('', '_fixed'):
    gap = np.abs(accs['gpu' + key] - accs['cpu' + key])
    assert gap.max() <= 0.01 and gap.mean() <= 0.002, gap
