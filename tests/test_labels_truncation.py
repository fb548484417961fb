"""Learned (soft) labels and truncated unrolls: gradients, files, learning."""

import dataclasses
import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import mnist as mnist_config
from ddistill import checkpoints
from ddistill import config_checks
from ddistill import distill
from ddistill import export
from ddistill import models
from ddistill import train
from ddistill.errors import ConfigError, DataError

import finite_differences

K = 3  # Classes of the tiny problems.
SHAPE = (6, 6, 1)


class TinyNet(nn.Module):
  """Smooth (tanh) and small: float64 finite differences stay accurate."""

  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    return nn.Dense(K)(jnp.tanh(nn.Dense(8)(x)))


def _problem(steps=3, epochs=2, dtype=jnp.float64, learned=True):
  """A distilled set (with label logits if `learned`), an init, real data.

  Real images of class c are a class pattern plus noise, so distilled images
  and labels can carry what separates the classes.
  """
  k = jax.random.split(jax.random.key(0), 5)
  apply_fn = models.Apply(TinyNet())
  params0 = TinyNet().init(k[0], jnp.zeros((1, *SHAPE)))['params']
  labels_SxN = distill.distilled_labels(steps, K, 1)
  distilled = distill.init_distilled(k[1], labels_SxN, SHAPE, epochs, 0.3)
  if learned:
    distilled['label_logits'] = distill.init_label_logits(labels_SxN, K, 4.0)
  patterns_KxHxWxC = jax.random.normal(k[2], (K, *SHAPE))
  real_y = jax.random.randint(k[3], (120,), 0, K)
  real_x = patterns_KxHxWxC[real_y] + 0.5 * jax.random.normal(
      k[4], (120, *SHAPE))
  cast = lambda t: jax.tree.map(lambda a: a.astype(dtype), t)
  return apply_fn, cast(params0), labels_SxN, cast(distilled), cast(real_x), \
      real_y


def test_label_logit_meta_gradient_matches_finite_differences():
  with jax.enable_x64(True):
    apply_fn, params0, labels, distilled, real_x, real_y = _problem()
    loss = jax.jit(functools.partial(
        distill.outer_loss, params0=params0, real_x=real_x, real_y=real_y,
        apply_fn=apply_fn, labels_SxN=labels))
    grads = finite_differences.check(loss, distilled, 'label_logits')
    assert float(jnp.abs(grads['label_logits']).max()) > 1e-6
    # Still right beside the labels.
    finite_differences.check(loss, distilled, 'images', grads)


def test_soft_labels_change_what_the_inner_steps_fit():
  with jax.enable_x64(True):
    apply_fn, params0, labels, distilled, real_x, real_y = _problem()
    loss = functools.partial(distill.outer_loss, params0=params0,
                             real_x=real_x, real_y=real_y, apply_fn=apply_fn,
                             labels_SxN=labels)
    hard = {k: v for k, v in distilled.items() if k != 'label_logits'}
    # Near-one-hot logits give nearly the hard labels' loss; others do not.
    sharp = {**distilled, 'label_logits': 40.0 * distilled['label_logits']}
    np.testing.assert_allclose(loss(sharp), loss(hard), rtol=1e-9)
    flat = {**distilled, 'label_logits': 0.0 * distilled['label_logits']}
    assert abs(float(loss(flat)) - float(loss(hard))) > 1e-3


def test_raw_labels_start_at_the_hard_loss_scale_steps_and_differentiate():
  """Raw targets (Soft-Label DD's form) are unnormalised: one-hot is the
  hard labels' loss, c times one-hot is the hard labels with c times the
  lrs, and the meta-gradient in the targets matches finite differences."""
  with jax.enable_x64(True):
    apply_fn, params0, labels, hard, real_x, real_y = _problem(learned=False)
    loss = jax.jit(functools.partial(
        distill.outer_loss, params0=params0, real_x=real_x, real_y=real_y,
        apply_fn=apply_fn, labels_SxN=labels))
    one_hot = jax.nn.one_hot(labels, K, dtype=jnp.float64)
    raw = {**hard, 'label_targets': one_hot}
    np.testing.assert_allclose(loss(raw), loss(hard), rtol=1e-12)
    lrs = distill.lrs_from_raw(hard['raw_lrs'])
    # softplus^-1 in float64 (raw_from_lrs works in float32).
    doubled = {**hard, 'raw_lrs': 2 * lrs + jnp.log(-jnp.expm1(-2 * lrs))}
    np.testing.assert_allclose(loss({**raw, 'label_targets': 2 * one_hot}),
                               loss(doubled), rtol=1e-9)
    assert abs(float(loss(doubled)) - float(loss(hard))) > 1e-3
    grads = finite_differences.check(loss, raw, 'label_targets')
    assert float(jnp.abs(grads['label_targets']).max()) > 1e-6


def _soft_set(num_classes=4):
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 5, num_classes)) * 2
  soft = np.asarray(jax.nn.softmax(jnp.asarray(logits, jnp.float32)))
  return export.DistilledSet(
      rng.normal(size=(2, 5, 4, 4, 1)).astype(np.float32),
      soft.argmax(-1).astype(np.int32), np.full(4, 0.1, np.float32),
      np.array([0.5]), np.array([0.25]), 2, soft)


def test_soft_labels_round_trip(tmp_path):
  d = _soft_set()
  path = str(tmp_path / 'distilled.npz')
  export.save_distilled(path, d)
  back = export.load_distilled(path)
  np.testing.assert_array_equal(back.soft_labels, d.soft_labels)
  np.testing.assert_array_equal(back.labels, d.labels)
  np.testing.assert_array_equal(back.targets, d.soft_labels)


def test_files_without_soft_labels_load_as_one_hot(tmp_path):
  d = _soft_set()
  path = str(tmp_path / 'old.npz')
  np.savez(path, **{f: getattr(d, f) for f in export.FIELDS})  # No soft.
  back = export.load_distilled(path, num_classes=6)
  assert back.soft_labels.shape == (2, 5, 6)
  np.testing.assert_array_equal(back.soft_labels.argmax(-1), d.labels)
  np.testing.assert_array_equal(back.soft_labels.sum(-1), 1.0)
  # One-hot soft labels train as the integer labels they are.
  np.testing.assert_array_equal(back.targets, d.labels)


def test_raw_labels_round_trip_unnormalised_and_refuse_nan(tmp_path):
  d = _soft_set()
  raw = export.DistilledSet(d.images, d.labels, d.lrs, d.mean, d.std,
                            d.epochs, 3 * d.soft_labels - 0.5, True)
  path = str(tmp_path / 'raw.npz')
  export.save_distilled(path, raw)
  back = export.load_distilled(path)
  assert back.raw_labels
  np.testing.assert_array_equal(back.targets, raw.soft_labels)
  bad = raw.soft_labels.copy()
  bad[0, 0, 0] = np.nan
  with pytest.raises(DataError, match='soft_labels hold NaN'):
    dataclasses.replace(raw, soft_labels=bad)  # Never made, so never saved.
  with np.load(path) as f:
    arrays = {**f, 'soft_labels': bad}
  np.savez(path, **arrays)  # Written by other code.
  with pytest.raises(DataError, match='raw.npz: soft_labels hold NaN'):
    export.load_distilled(path)


def test_soft_labels_that_are_not_distributions_are_refused(tmp_path):
  d = _soft_set()
  path = str(tmp_path / 'bad.npz')
  arrays = {f: getattr(d, f) for f in export.FIELDS}
  np.savez(path, **arrays, soft_labels=2 * d.soft_labels)
  with pytest.raises(DataError, match='not distributions'):
    export.load_distilled(path)
  np.savez(path, **arrays, soft_labels=d.soft_labels[:1])
  with pytest.raises(DataError, match='do not fit'):
    export.load_distilled(path)


def _labels_only_optimizer(learning_rate):
  """Adam on the label logits; images and lrs kept as they are."""
  which = {'images': 'frozen', 'raw_lrs': 'frozen', 'label_logits': 'learned'}
  return optax.multi_transform({'learned': optax.adam(learning_rate),
                                'frozen': optax.set_to_zero()}, which)


def _train(distilled, optimizer, iterations, dtype=jnp.float32, **step_kw):
  """`iterations` outer steps on all the real data; the outer loss of the
  full unroll before and after, and the distilled set after."""
  apply_fn, params0, labels, _, real_x, real_y = _problem(dtype=dtype)
  step = jax.jit(functools.partial(
      distill.train_step, apply_fn=apply_fn, labels_SxN=labels,
      optimizer=optimizer, batch_size=len(real_y),
      batch_indices=lambda key, step: jnp.arange(len(real_y)), **step_kw))
  params0_I = jax.tree.map(lambda a: a[None], params0)
  state = {'distilled': distilled, 'opt_state': optimizer.init(distilled),
           'step': jnp.zeros((), jnp.int32)}
  full_loss = jax.jit(lambda d: distill.outer_loss(
      d, params0, real_x, real_y, apply_fn=apply_fn, labels_SxN=labels))
  before = full_loss(distilled)
  for it in range(iterations):
    state, _ = step(state, params0_I, real_x, real_y,
                    jax.random.fold_in(jax.random.key(1), it))
    state['step'] = jnp.asarray(it + 1, jnp.int32)  # As the run loop does.
  return float(before), float(full_loss(state['distilled'])), \
      state['distilled']


def test_learned_labels_alone_lower_the_outer_loss():
  distilled = _problem(dtype=jnp.float32)[3]
  before, after, learned = _train(distilled, _labels_only_optimizer(0.1), 20)
  assert after < 0.9 * before, (before, after)
  np.testing.assert_array_equal(learned['images'], distilled['images'])
  moved = jnp.abs(jax.nn.softmax(learned['label_logits']) -
                  jax.nn.softmax(distilled['label_logits'])).max()
  assert float(moved) > 0.01


def test_full_window_equals_the_full_unroll():
  with jax.enable_x64(True):
    apply_fn, params0, labels, distilled, real_x, real_y = _problem()
    loss = functools.partial(distill.outer_loss, params0=params0,
                             real_x=real_x, real_y=real_y, apply_fn=apply_fn,
                             labels_SxN=labels)
    num_lrs = distilled['raw_lrs'].shape[0]
    full, g_full = jax.value_and_grad(loss)(distilled)
    truncated, g_trunc = jax.jit(jax.value_and_grad(
        lambda d, end: loss(d, truncate_window=num_lrs, end_step=end)))(
            distilled, num_lrs)
    np.testing.assert_allclose(truncated, full, rtol=1e-12)
    for name in distilled:
      np.testing.assert_allclose(g_trunc[name], g_full[name], rtol=1e-10,
                                 atol=1e-14)


def test_train_step_with_a_full_window_equals_the_full_step():
  """W = T leaves the end step T: the same update as no truncation."""
  with jax.enable_x64(True):
    distilled = _problem()[3]
    optimizer = distill.make_optimizer(0.01, 0.5, 100, 0.5)
    _, _, full = _train(distilled, optimizer, 2, jnp.float64)
    _, _, windowed = _train(distilled, optimizer, 2, jnp.float64,
                            truncate_window=distilled['raw_lrs'].shape[0])
    for name in distilled:
      np.testing.assert_allclose(windowed[name], full[name], rtol=1e-10,
                                 atol=1e-14)


def test_steps_before_the_window_get_no_gradient():
  """S = 3 steps, 2 epochs (T = 6); the window is steps 2 and 3 of 0..5."""
  with jax.enable_x64(True):
    apply_fn, params0, labels, distilled, real_x, real_y = _problem()
    loss = functools.partial(distill.outer_loss, real_x=real_x,
                             real_y=real_y, apply_fn=apply_fn,
                             labels_SxN=labels)
    grads = jax.jit(jax.grad(lambda d, end: loss(
        d, params0, truncate_window=2, end_step=end)))(distilled, 4)
    # Step t applies image set t % 3 with lr t: sets 2 and 0 are in the
    # window; set 1 only before it. lrs 0, 1 are before it, 4, 5 after it.
    image_norms = [float(jnp.abs(grads['images'][s]).max()) for s in range(3)]
    assert image_norms[1] == 0.0 and min(image_norms[0], image_norms[2]) > 0
    assert float(jnp.abs(grads['label_logits'][1]).max()) == 0.0
    lr_grads = np.asarray(grads['raw_lrs'])
    np.testing.assert_array_equal(lr_grads[[0, 1, 4, 5]], 0.0)
    assert np.all(np.abs(lr_grads[2:4]) > 0)

    # The window's gradient: two steps from the prefix's params, held fixed.
    def window_loss(d):
      targets = jax.nn.softmax(d['label_logits'])
      lrs = distill.lrs_from_raw(d['raw_lrs'])
      params = params0
      for t in range(4):
        if t == 2:
          params = jax.lax.stop_gradient(params)
        params = distill.gd_step(apply_fn, params, d['images'][t % 3],
                                 targets[t % 3], lrs[t])
      return distill.cross_entropy(apply_fn(params, real_x), real_y)

    want = jax.grad(window_loss)(distilled)
    for name in distilled:
      np.testing.assert_allclose(grads[name], want[name], rtol=1e-10,
                                 atol=1e-14)


def test_truncated_unrolls_still_learn():
  distilled = _problem(dtype=jnp.float32)[3]
  optimizer = distill.make_optimizer(0.05, 0.5, 100, 0.5)
  before, after, _ = _train(distilled, optimizer, 20, truncate_window=2)
  assert after < 0.8 * before, (before, after)


def test_bad_label_and_window_fields_are_refused():
  config = mnist_config.get_config('quick')
  config.distill.label_mode = 'soft'
  with pytest.raises(ConfigError, match='label_mode'):
    config_checks.validate(config)
  config = mnist_config.get_config('quick')
  config.distill.truncate_window = config.distill.steps * \
      config.distill.epochs + 1
  with pytest.raises(ConfigError, match='truncate_window = 31 exceeds'):
    config_checks.validate(config)
  config.distill.truncate_window = -1
  with pytest.raises(ConfigError, match='truncate_window'):
    config_checks.validate(config)


@pytest.mark.parametrize('label_mode', ['learned', 'raw'])
def test_run_with_learned_labels_saves_checkpoints_and_soft_labels(
    tmp_path, mnist, label_mode):
  from ddistill.data import datasets
  config = mnist_config.get_config('quick')
  config.update_from_flattened_dict({
      'data.data_dir': datasets.resolve_data_dir(), 'num_iterations': 4,
      'distill.steps': 2, 'distill.epochs': 2, 'real_batch_size': 64,
      'log_every': 2, 'eval_every': 0, 'checkpoint_every': 2,
      'eval.num_models': 2, 'eval.num_models_during': 1,
      'model.name': 'mlp',  # Quick to compile; the engine is the same.
      'distill.label_mode': label_mode, 'distill.truncate_window': 2,
      'optim.lr': 0.05})
  workdir = str(tmp_path / 'run')
  results = train.train_and_evaluate(config, workdir)
  path = os.path.join(workdir, 'distilled.npz')
  d = export.load_distilled(path)
  assert d.soft_labels.shape == (2, 10, 10)
  assert d.raw_labels == (label_mode == 'raw')
  np.testing.assert_array_equal(d.labels, d.soft_labels.argmax(-1))
  assert d.targets is d.soft_labels  # Learned: not one-hot any more.

  # The checkpoint holds the labels the file's soft labels came from.
  program = train.build_program(config, 10, (28, 28, 1))
  like = train.initial_state(config, program, mnist.train_images[:100],
                             mnist.train_labels[:100])
  step, state = checkpoints.restore_latest(
      checkpoints.manager(workdir, 2), like)
  assert step == 4
  if label_mode == 'learned':
    np.testing.assert_allclose(d.soft_labels.sum(-1), 1.0, atol=1e-6)
    saved = jax.nn.softmax(state['distilled']['label_logits'])
  else:  # Unnormalised: the rows moved off 1 as they learned.
    assert np.abs(d.soft_labels.sum(-1) - 1).max() > 1e-4
    saved = state['distilled']['label_targets']
  np.testing.assert_allclose(saved, d.soft_labels, rtol=1e-6)

  # Evaluating the file (the run's fixed init) repeats the run's result.
  evaluated = train.evaluate_distilled_file(config, path, 2)
  assert evaluated['test_accuracy']['mean'] == pytest.approx(
      results['test_accuracy']['mean'], abs=1e-6)


def test_the_grid_names_each_rows_classes_once_they_differ(tmp_path):
  """Learned labels can give each step's images their own classes: the PNG
  then writes them above every row, not step 0's over all."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from ddistill import viz  # pylint: disable=g-import-not-at-top
  images = np.zeros((2, 3, 8, 8, 1), np.float32)
  lrs, mean, std = np.ones(2), np.zeros(1), np.ones(1)

  def ink_rows(labels):
    path = str(tmp_path / 'grid.png')
    viz.save_grid(path, images, lrs, mean, std, labels=labels)
    gray = np.asarray(Image.open(path).convert('L'))
    return np.flatnonzero((gray[:, 150:] < 128).any(1))  # Text or tiles.

  shared = ink_rows(np.array([[0, 1, 2], [0, 1, 2]]))
  own = ink_rows(np.array([[0, 1, 2], [2, 1, 0]]))
  # One header line, then two rows of tiles (8 px at scale 2, pad 2).
  assert shared.max() + 1 == 14 + 2 * 18 - 2
  # A header line above each row of tiles.
  assert own.max() + 1 == 2 * (14 + 18) - 2
