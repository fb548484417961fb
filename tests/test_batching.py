"""Every way of batching inits, and both conv paths, compute the same thing."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import mnist as mnist_config
from ddistill import augment
from ddistill import distill
from ddistill import evaluate
from ddistill import inits
from ddistill import models
from ddistill import train
from ddistill.models import layers


def _problem(name='lenet', shape=(28, 28, 1), num_inits=2, conv_impl='matmul'):
  model = models.make_model(name, 10, shape,
                            inits.kernel_initializer('xavier_normal'),
                            conv_impl)
  k = jax.random.split(jax.random.key(0), 4)
  params0_I = inits.sample_params(model, k[0], num_inits, shape)
  labels = distill.distilled_labels(2, 10, 1)
  distilled = distill.init_distilled(k[1], labels, shape, 1, 0.02)
  real_x = jax.random.normal(k[2], (16, *shape))
  real_y = jax.random.randint(k[3], (16,), 0, 10)
  return model, params0_I, labels, distilled, real_x, real_y


def test_vmap_and_map_match_a_python_loop_over_inits():
  model, params0_I, labels, distilled, x, y = _problem()
  kw = dict(real_x=x, real_y=y, apply_fn=models.Apply(model),
            labels_SxN=labels)
  # Reference: a Python loop of single-init losses, averaged.
  def loop_loss(d):
    losses = [distill.outer_loss(d, jax.tree.map(lambda a: a[i], params0_I),
                                 **kw) for i in range(2)]
    return sum(losses) / 2
  ref_loss, ref_grads = jax.jit(jax.value_and_grad(loop_loss))(distilled)
  for batching in distill.BATCHINGS:
    loss, grads = jax.jit(jax.value_and_grad(functools.partial(
        distill.mean_outer_loss, batching=batching, **kw)))(distilled,
                                                            params0_I)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)


def test_padding_inits_are_left_out_of_the_loss_and_gradients():
  # Inits are padded to split evenly over devices; the padding must not count.
  model, params0_I, labels, distilled, x, y = _problem(num_inits=3)
  loss_fn = functools.partial(distill.mean_outer_loss, real_x=x, real_y=y,
                              apply_fn=models.Apply(model), labels_SxN=labels)
  first_two = jax.tree.map(lambda a: a[:2], params0_I)
  ref_loss, ref_grads = jax.jit(jax.value_and_grad(loss_fn))(distilled,
                                                             first_two)
  loss, grads = jax.jit(jax.value_and_grad(functools.partial(
      loss_fn, num_valid=2)))(distilled, params0_I)
  all_three = jax.jit(loss_fn)(distilled, params0_I)
  assert abs(float(all_three) - float(ref_loss)) > 1e-4  # The pad matters...
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)  # ...unless left out.
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_unknown_batching_is_an_error():
  model, params0_I, labels, distilled, x, y = _problem()
  with pytest.raises(ValueError, match="unknown batching 'pmap'"):
    distill.mean_outer_loss(distilled, params0_I, x, y,
                            apply_fn=models.Apply(model), labels_SxN=labels,
                            batching='pmap')


def _outer_loss_and_grads(chunks, **options):
  """(loss, meta-gradients) of _problem() with each real_chunk in chunks."""
  model, params0_I, labels, distilled, x, y = _problem()
  def loss_and_grads(chunk):
    loss_fn = functools.partial(
        distill.mean_outer_loss, real_x=x, real_y=y, real_chunk=chunk,
        apply_fn=models.Apply(model), labels_SxN=labels, **options)
    return jax.jit(jax.value_and_grad(loss_fn))(distilled, params0_I)
  return [loss_and_grads(c) for c in chunks]


@pytest.mark.parametrize('batching', distill.BATCHINGS)
def test_real_batch_in_chunks_gives_the_same_loss_and_meta_gradients(
    batching):
  # 16 real images: chunks of 5 end in one of 1; 16 or more is one pass.
  _assert_same_losses_and_grads(
      _outer_loss_and_grads((0, 5, 8, 16), batching=batching))


def test_real_batch_in_unrolled_chunks_gives_the_same_gradients():
  # unroll=True (benchmarks/outer_step.py's FLOP count) unrolls the chunks.
  _assert_same_losses_and_grads(_outer_loss_and_grads((0, 5), unroll=True))


def test_real_chunk_auto_and_bad_values():
  on_cpu = jax.default_backend() == 'cpu'
  assert distill.real_chunk_size(-1) == (distill.CPU_REAL_CHUNK if on_cpu
                                         else 0)
  assert distill.real_chunk_size(0) == 0
  assert distill.real_chunk_size(7) == 7
  with pytest.raises(ValueError, match='real_chunk = -2'):
    distill.real_chunk_size(-2)
  model, params0_I, _, _, x, y = _problem()
  params = jax.tree.map(lambda a: a[0], params0_I)
  with pytest.raises(ValueError, match='real batch chunk -1 < 0'):
    distill.real_loss(models.Apply(model), params, x, y, chunk=-1)


def test_real_batch_in_chunks_under_labels_truncation_and_dsa():
  # One outer iteration through train_step with learned labels, a truncated
  # unroll and Siamese augmentation: chunks of 5 (of 16) change nothing. SGD
  # with lr 1 makes the update the meta-gradient itself (Adam's would hide a
  # wrong scale).
  model, params0_I, labels, distilled, x, y = _problem()
  distilled = {**distilled, **distill.init_labels('learned', labels, 10, 4.0)}
  optimizer = optax.sgd(1.0)
  state = {'distilled': distilled, 'opt_state': optimizer.init(distilled),
           'step': 0}
  def one_step(chunk):
    step = jax.jit(functools.partial(
        distill.train_step, apply_fn=models.Apply(model), labels_SxN=labels,
        optimizer=optimizer, batch_size=16, truncate_window=1,
        siamese_augment=augment.from_spec('crop,flip,color'),
        real_chunk=chunk))
    new_state, metrics = step(state, params0_I, x, y, jax.random.key(7))
    minus_grads = jax.tree.map(jnp.subtract, new_state['distilled'],
                               distilled)
    return metrics['loss'], minus_grads
  _assert_same_losses_and_grads([one_step(0), one_step(5)])


def test_real_batch_in_chunks_needs_a_fraction_of_the_scratch():
  model, params0_I, labels, distilled, _, _ = _problem()
  x = jnp.zeros((1024, 28, 28, 1))
  y = jnp.zeros((1024,), jnp.int32)
  def scratch_bytes(chunk):
    grad_fn = jax.jit(jax.grad(functools.partial(
        distill.mean_outer_loss, apply_fn=models.Apply(model),
        labels_SxN=labels, real_chunk=chunk)))
    compiled = grad_fn.lower(distilled, params0_I, x, y).compile()
    return compiled.memory_analysis().temp_size_in_bytes
  assert scratch_bytes(128) < scratch_bytes(0) / 4


def _assert_same_losses_and_grads(results):
  """Every (loss, grads) pair matches the first, gradients to their scale."""
  (loss_ref, grads_ref), *others = results
  for loss, grads in others:
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)):
      scale = float(jnp.abs(b).max())
      np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * scale)


# LeNet on MNIST and AlexCifarNet on CIFAR are checked for every conv path
# against the official code's meta-gradients in test_golden.py.
@pytest.mark.parametrize('name,shape', [('lenet', (32, 32, 3))])
def test_conv_paths_give_the_same_loss_and_gradients(name, shape):
  results = []
  for impl in layers.CONV_IMPLS:
    model, params0_I, labels, distilled, x, y = _problem(name, shape, 1, impl)
    loss_fn = functools.partial(distill.mean_outer_loss,
                                apply_fn=models.Apply(model),
                                labels_SxN=labels)
    results.append(jax.jit(jax.value_and_grad(loss_fn))(distilled, params0_I,
                                                        x, y))
  _assert_same_losses_and_grads(results)


def test_model_rejects_image_sizes_it_cannot_take():
  init = inits.kernel_initializer('xavier_normal')
  with pytest.raises(ValueError, match='lenet.*16x16'):
    models.make_model('lenet', 10, (16, 16, 1), init)
  with pytest.raises(ValueError, match='alexcifarnet.*28x28'):
    models.make_model('alexcifarnet', 10, (28, 28, 1), init)
  with pytest.raises(ValueError, match='unknown model'):
    models.make_model('resnet9000', 10, (28, 28, 1), init)


def test_lrn_matches_its_definition():
  x = jax.random.normal(jax.random.key(0), (2, 3, 3, 6))
  got = layers.local_response_norm(x, 4, alpha=0.1, beta=0.75, k=1.0)
  xn = np.asarray(x)
  want = np.empty_like(xn)
  for c in range(6):
    window = range(max(0, c - 2), min(6, c + 2))  # c-2 .. c+1.
    div = 1.0 + 0.1 * sum(xn[..., j]**2 for j in window) / 4
    want[..., c] = xn[..., c] / div**0.75
  np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize('name', inits.INITS)
def test_inits_have_the_intended_scale(name):
  init = inits.kernel_initializer(name, gain=2.0)
  w = init(jax.random.key(0), (5, 5, 16, 32))  # fan_in 400, fan_out 800.
  std = {'xavier_normal': 2.0 * np.sqrt(2 / 1200),
         'xavier_uniform': 2.0 * np.sqrt(2 / 1200),
         'kaiming': 2.0 * np.sqrt(2 / 400),
         'orthogonal': None}[name]
  if std is None:
    flat = np.asarray(w).reshape(-1, 32)
    np.testing.assert_allclose(flat.T @ flat, 4.0 * np.eye(32), atol=1e-4)
  else:
    np.testing.assert_allclose(np.std(w), std, rtol=0.05)


def test_first_order_conv_on_the_real_batch_gives_the_same_meta_gradient():
  # Training runs apply the net to the real batch with 'split' (fast on CPU,
  # differentiated once) and run the inner steps with 'matmul'. Three inits
  # share one real batch, as in a random-init iteration.
  model, params0_I, labels, distilled, x, y = _problem(num_inits=3)
  results = []
  for real_impl in ('matmul', 'split', 'xla'):
    loss_fn = functools.partial(
        distill.mean_outer_loss, apply_fn=models.Apply(model),
        labels_SxN=labels,
        real_apply_fn=models.Apply(model.clone(conv_impl=real_impl)))
    results.append(jax.jit(jax.value_and_grad(loss_fn))(distilled, params0_I,
                                                        x, y))
  _assert_same_losses_and_grads(results)


@pytest.mark.skipif(jax.default_backend() != 'cpu', reason='CPU choice')
def test_cpu_auto_runs_lenet_in_blocks_from_many_images_and_bands_small_layers(
    monkeypatch):
  # 'auto' on CPU: LeNet's inner steps in blocks from 100 images per step,
  # im2col below; its real batch in blocks; other models 'split'.
  for variant, want in (('paper_fixed', 'blocks'), ('official_fixed',
                                                    'matmul')):
    config = mnist_config.get_config(variant)
    program = train.build_program(config, 10, (28, 28, 1),
                                  num_examples=60000)
    assert program.apply_fn.model.conv_impl == want, variant
    assert program.first_order_apply_fn.model.conv_impl == 'blocks', variant
  assert models.inner_conv_impl('auto', 1000, 'convnet') == 'auto'
  assert models.inner_conv_impl('xla', 1000, 'lenet') == 'xla'  # Kept.
  assert models.first_order_conv_impl('auto', 'auto', 'convnet') == 'split'
  # 'banded' bands LeNet's layers; a layer as wide as AlexCifarNet's first
  # runs as im2col (its band would be mostly zeros), the same conv.
  banded_shapes = []
  banded = layers.conv_as_banded_matmul
  monkeypatch.setattr(layers, 'conv_as_banded_matmul',
                      lambda x, k, pad: banded_shapes.append(k.shape) or
                      banded(x, k, pad))
  init = jax.nn.initializers.lecun_normal()
  lenet = models.make_model('lenet', 10, (28, 28, 1), init, 'banded')
  lenet.init(jax.random.key(0), jnp.zeros((2, 28, 28, 1)))
  assert banded_shapes == [(5, 5, 1, 6), (5, 5, 6, 16)]
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  out = {}
  for impl in ('banded', 'xla'):
    conv = layers.Conv(64, 5, 2, init, impl)
    out[impl] = conv.apply(conv.init(jax.random.key(1), x), x)
  assert banded_shapes == [(5, 5, 1, 6), (5, 5, 6, 16)]  # Not called again.
  np.testing.assert_allclose(out['banded'], out['xla'], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('x_shape,kernel_shape,pad', [
    ((3, 9, 9, 1), (5, 5, 1, 4), 2), ((2, 8, 7, 3), (3, 5, 3, 2), 0)])
def test_kernel_gradient_by_rows_matches_autodiff(x_shape, kernel_shape,
                                                  pad):
  kx, kk, kg = jax.random.split(jax.random.key(3), 3)
  x = jax.random.normal(kx, x_shape)
  kernel = jax.random.normal(kk, kernel_shape)
  y_shape = layers.conv_xla(x, kernel, pad).shape
  g_I = jax.random.normal(kg, (2, *y_shape))  # Two inits sharing the input.

  def autodiff(g):
    return jax.vjp(lambda k: layers.conv_xla(x, k, pad), kernel)[1](g)[0]

  by_rows = lambda g: layers.conv_kernel_grad_by_rows(x, g, kernel_shape, pad)
  np.testing.assert_allclose(jax.vmap(by_rows)(g_I), jax.vmap(autodiff)(g_I),
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('max_patch_entries', [0, layers._MAX_PATCH_ENTRIES])
def test_split_conv_of_a_large_layer_has_xla_gradients(max_patch_entries,
                                                       monkeypatch):
  # A layer past the banded limit: 'split' keeps XLA's forward and input
  # gradient, and takes the kernel gradient by im2col (the patches fit) or,
  # past _MAX_PATCH_ENTRIES, by XLA's transposed conv.
  monkeypatch.setattr(layers, '_MAX_PATCH_ENTRIES', max_patch_entries)
  kx, kk, kg = jax.random.split(jax.random.key(4), 3)
  x = jax.random.normal(kx, (3, 12, 12, 16))
  kernel = 0.1 * jax.random.normal(kk, (5, 5, 16, 32))
  g = jax.random.normal(kg, (3, 12, 12, 32))
  loss = lambda conv: lambda x, k: jnp.sum(g * jnp.tanh(conv(x, k, 2)))
  split = jax.grad(loss(layers.conv_split), (0, 1))(x, kernel)
  xla = jax.grad(loss(layers.conv_xla), (0, 1))(x, kernel)
  for got, want in zip(split, xla):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('shape', [(2, 6, 6, 3), (2, 7, 5, 2)])
def test_max_pool_gradients_match_autodiff_of_max(shape):
  # Coarsely rounded inputs: many windows hold tied maxima, which must
  # share the gradient. Odd sizes lose their last row or column.
  x = jnp.round(jax.random.normal(jax.random.key(1), shape))
  assert np.unique(np.asarray(x)).size < 10  # So ties are many.
  w = jax.random.normal(jax.random.key(2), (shape[0], shape[1] // 2,
                                            shape[2] // 2, shape[3]))

  def plain(x):
    b, h, wd, c = x.shape
    return x[:, :h // 2 * 2, :wd // 2 * 2].reshape(
        b, h // 2, 2, wd // 2, 2, c).max(axis=(2, 4))

  for pool in (layers.max_pool_2x2, plain):
    np.testing.assert_array_equal(pool(x), plain(x))
  # First order, and second order as the meta-gradient needs it: the
  # gradient of a loss taken after one gradient step.
  def after_step(pool, x):
    g = jax.grad(lambda x: jnp.sum(w * pool(x)**2))(x)
    return jnp.sum(jnp.sin(pool(x - 0.1 * g)))

  for order in (lambda p: jax.grad(lambda x: jnp.sum(w * p(x)**2)),
                lambda p: jax.grad(functools.partial(after_step, p))):
    np.testing.assert_allclose(order(layers.max_pool_2x2)(x),
                               order(plain)(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('shape', [(2, 28, 28, 1), (2, 32, 32, 3)])
def test_lenet_blocks_match_conv_relu_pool_in_both_derivatives(shape):
  # Coarsely rounded images and kernel: the ReLU zeroes many windows and
  # ties many maxima, which must share the gradient as autodiff of max.
  kx, kk, kp = jax.random.split(jax.random.key(4), 3)
  x = jnp.round(jax.random.normal(kx, shape))
  init = inits.kernel_initializer('xavier_normal')
  lenet = lambda impl: models.make_model('lenet', 10, shape[1:], init, impl)
  params = lenet('xla').init(kp, x)['params']
  params = jax.tree.map(lambda p: jnp.round(p * 4) / 4, params)
  apply = {impl: models.Apply(lenet(impl)) for impl in ('xla', 'blocks')}
  np.testing.assert_allclose(apply['blocks'](params, x),
                             apply['xla'](params, x), rtol=1e-5, atol=1e-5)
  w = jax.random.normal(kk, (shape[0], 10))

  def after_step(f, x):
    # The meta-gradient's second order: a loss after one step on x.
    g = jax.grad(lambda p: jnp.sum(w * f(p, x)**2))(params)
    stepped = jax.tree.map(lambda p, g: p - 0.01 * g, params, g)
    return jnp.sum(jnp.sin(f(stepped, x)))

  # Jitted: one program each, where eager autodiff compiles every op.
  first = {k: jax.jit(jax.grad(lambda x: jnp.sum(w * f(params, x)**2)))(x)
           for k, f in apply.items()}
  second = {k: jax.jit(jax.grad(functools.partial(after_step, f)))(x)
            for k, f in apply.items()}
  for got in (first, second):
    scale = float(jnp.abs(got['xla']).max())
    assert scale > 0
    np.testing.assert_allclose(got['blocks'], got['xla'], rtol=1e-4,
                               atol=1e-5 * scale)
  layer = layers.ConvReluPoolBlocks(6, 5, 4, init)
  with pytest.raises(ValueError, match='blocks of 4 pixels'):
    layer.init(kp, jnp.zeros((1, 8, 8, 20)))  # 20 is not 4 * 4 * C.


# AlexCifarNet's plain path is the im2col matmul: XLA's CPU conv gradients
# inside evaluation's loops are slow (benchmarks/README.md), and LeNet
# already runs XLA's convs here.
@pytest.mark.parametrize('name,shape,steps,learned,plain', [
    ('lenet', (28, 28, 1), 40, 0.5, 'xla'),
    ('alexcifarnet', (32, 32, 3), 10, 0.3, 'matmul')])
def test_held_out_evaluation_runs_every_conv_path_alike(name, shape, steps,
                                                        learned, plain):
  # Evaluation trains the held-out models inside shard_map, where the split
  # conv's hand-written backward pass must keep the models' varying type.
  # A set the models learn from: ten smooth class patterns, a few GD steps
  # (AlexCifarNet's are slow on CPU) at a small lr (larger ones make
  # training chaotic, so that float rounding grows into different nets);
  # tested on 200 noisy copies.
  k = jax.random.split(jax.random.key(5), 4)
  patterns = jax.image.resize(jax.random.normal(k[0], (10, 4, 4, shape[2])),
                              (10, *shape), 'linear')
  labels = distill.distilled_labels(1, 10, 1)
  lrs = jnp.full(steps, 0.02)
  test_y = np.asarray(jax.random.randint(k[1], (200,), 0, 10))
  test_x = np.asarray(patterns[test_y] +
                      2.5 * jax.random.normal(k[2], (200, *shape)))
  accs = {}
  for impl in (plain, 'split'):
    model = models.make_model(name, 10, shape,
                              inits.kernel_initializer('xavier_normal'), impl)
    params0_M = inits.sample_params(model, k[3], 2, shape)
    accs[impl] = evaluate.evaluate_set(models.Apply(model), params0_M,
                                       patterns[None], labels, lrs, test_x,
                                       test_y)
  # The same nets trained and tested directly, outside shard_map.
  apply_fn = models.Apply(model)
  trained_M = jax.jit(jax.vmap(lambda p: distill.train_on_distilled(
      apply_fn, p, patterns[None], labels, lrs)))(params0_M)
  logits_MxB = jax.vmap(apply_fn, (0, None))(trained_M, test_x)
  direct = np.mean(np.asarray(logits_MxB).argmax(-1) == test_y, axis=1)
  assert direct.min() > learned  # Far above chance (0.1): the nets learned.
  for impl, acc in accs.items():
    # Two test images' flips at most, from float rounding.
    np.testing.assert_allclose(acc, direct, rtol=0, atol=2.5 / 200,
                               err_msg=impl)
