"""A whole distillation run: `train_and_evaluate(config, workdir)`.

Writes to the workdir: config.json, metrics.jsonl, checkpoints/ (resumed from
when the same command is run again, or extended with a larger
num_iterations; a damaged checkpoint is moved aside and the one before it
used), distilled.npz, distilled.png and results.json (each written whole or
not at all, see atomic_files). SIGTERM saves the iteration in progress and
stops the run (preemption.py).
"""

import dataclasses
import functools
import json
import os
import time
from typing import Any, Callable, Optional

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

from ddistill import augment
from ddistill import checkpoints
from ddistill import config_checks
from ddistill import data as data_lib
from ddistill.data import datasets
from ddistill import distill
from ddistill import errors
from ddistill.errors import WorkdirConflict
from ddistill import evaluate
from ddistill import export
from ddistill import inits
from ddistill import metrics
from ddistill import models
from ddistill import preemption
from ddistill import pretrained
from ddistill import real_batches
from ddistill import sharding
from ddistill import viz
from ddistill import workdir as workdir_lib


def run_keys(seed: int) -> dict[str, jax.Array]:
  """The seed's independent key streams, each folded from it once: a run's,
  and those of the tables and pools made beside runs of the same seed. With
  JAX's default (partitionable) threefry, split(key, n)[i] is fold_in(key,
  i), so these never draw from the seed's root directly: they would get the
  runs' keys."""
  root = jax.random.key(seed)
  names = ('fixed_init', 'images', 'train', 'heldout', 'real_batches',
           'standard_eval', 'validation', 'baselines', 'full_target', 'pool')
  return {name: jax.random.fold_in(root, i) for i, name in enumerate(names)}


def load_data(config: ml_collections.ConfigDict,
              whiten: bool = True) -> datasets.Dataset:
  """The config's dataset, in MNIST's digit format if config.data.as_mnist,
  ZCA-whitened if config.data.zca (and `whiten`)."""
  dc = config.data
  data = data_lib.load(dc)
  if dc.as_mnist:
    data = datasets.as_mnist_digits(data, dc.digit_box)
  if dc.zca and whiten:
    data = datasets.zca_whiten(data, dc.zca)
  return data


def load_split_data(config: ml_collections.ConfigDict
                    ) -> tuple[datasets.Dataset, Optional[tuple]]:
  """(load_data's dataset less a validation split of config.data.val_size
  training images, (those images, labels)), or (the dataset, None) without
  a split. The split is held out before ZCA whitening, so that the fit
  never sees it either."""
  data, val_xy = load_data(config, whiten=False), None
  if config.data.val_size:
    data, val_xy = datasets.hold_out(data, config.data.val_size,
                                     run_keys(config.seed)['validation'])
  if config.data.zca:
    whiten = datasets.zca_transform(data, config.data.zca)
    data = datasets.whitened(data, whiten)
    if val_xy is not None:
      val_xy = (whiten(val_xy[0]), val_xy[1])
  return data, val_xy


def build_model(config: ml_collections.ConfigDict, num_classes: int,
                image_shape: tuple[int, ...], images_per_step: int = 0):
  """The model and its `apply_fn(params, x)`; images_per_step: of the
  inner GD steps the model will run, which picks CPU's conv
  (`models.inner_conv_impl`)."""
  kernel_init = inits.kernel_initializer(config.model.init,
                                         config.model.init_gain)
  conv_impl = models.inner_conv_impl(config.model.conv_impl, images_per_step,
                                     config.model.name)
  model = models.make_model(config.model.name, num_classes, image_shape,
                            kernel_init, conv_impl)
  return model, models.Apply(model)


def first_order_apply(config: ml_collections.ConfigDict,
                      model) -> models.Apply:
  """`model` for passes differentiated only once: the real batch, evaluation."""
  impl = models.first_order_conv_impl(config.model.first_order_conv_impl,
                                      config.model.conv_impl,
                                      config.model.name)
  return models.Apply(model.clone(conv_impl=impl))


def _pool(config: ml_collections.ConfigDict, model, image_shape) -> dict:
  return pretrained.load_pool(config.distill.pretrained_dir, model,
                              image_shape)


def heldout_inits(config: ml_collections.ConfigDict, model, image_shape,
                  num: int):
  """The inits results are reported on.

  fixed: the training init itself. random: `num` fresh draws from a key
  stream that training never uses. fixed_pretrained: the pool's first
  training network. random_pretrained: the first `num` held-out networks of
  the pool (never seen in training).
  """
  keys = run_keys(config.seed)
  mode = config.distill.init_mode
  if mode == 'fixed':
    return inits.sample_params(model, keys['fixed_init'], 1, image_shape)
  if mode == 'random':
    return inits.sample_params(model, keys['heldout'], num, image_shape)
  pool = _pool(config, model, image_shape)
  if mode == 'fixed_pretrained':
    return jax.tree.map(lambda a: a[:1], pool['train'])
  available = pretrained.pool_size(pool['heldout'])
  if num > available:
    logging.warning('Evaluating on the %d held-out pretrained networks '
                    '(%d asked for).', available, num)
  return jax.tree.map(lambda a: a[:num], pool['heldout'])


def load_distilled_for(config: ml_collections.ConfigDict, data,
                       path: str) -> export.DistilledSet:
  """A saved distilled set, checked to fit the config's data: image shape,
  classes, and the same ZCA whitening (test images are whitened only when
  the config says so, so a mismatch would score garbage silently)."""
  d = export.load_distilled(path, data.num_classes)
  if d.images.shape[2:] != data.image_shape:
    raise errors.DataError(f'{path}: images of shape {d.images.shape[2:]} '
                           f'but {config.data.name} has {data.image_shape}')
  # Labels lie within the soft labels' classes (the set checks that itself).
  if d.soft_labels.shape[-1] != data.num_classes:
    raise errors.DataError(
        f'{path}: soft labels over {d.soft_labels.shape[-1]} classes but '
        f'{config.data.name} has {data.num_classes}')
  if not np.isclose(d.zca, config.data.zca):
    raise errors.DataError(
        f'{path}: distilled with data.zca = {d.zca:g} but the config has '
        f'{config.data.zca:g}; pass --config.data.zca={d.zca:g}')
  return d


def evaluate_distilled_file(config: ml_collections.ConfigDict, path: str,
                            num_models: int) -> dict[str, Any]:
  """Evaluates a saved `distilled.npz` on held-out models of the config.

  fixed init_mode: the run's fixed init (the set was made for it); random:
  `num_models` fresh inits.
  """
  config_checks.validate(config)
  data, _ = load_split_data(config)  # Whitened as the run was, if it was.
  d = load_distilled_for(config, data, path)
  model, _ = build_model(config, data.num_classes, data.image_shape)
  params0_M = heldout_inits(config, model, data.image_shape, num_models)
  accs = evaluate.evaluate_set(first_order_apply(config, model), params0_M,
                               d.images, d.targets, d.lrs, data.test_images,
                               data.test_labels)
  return {'test_accuracy': evaluate.summarize(accs), 'distilled': path,
          'init_mode': config.distill.init_mode}


# Fields that change how a run is computed, not what: a run resumes, and its
# results are reused, under other values of these (say, on another backend,
# or saved before the field existed).
HOW_NOT_WHAT = {'model': ('conv_impl', 'first_order_conv_impl'),
                'distill': ('batching', 'remat', 'real_chunk')}
# Fields added after runs were saved, with the value those runs used: a saved
# config without one matches a config that holds that value.
ADDED_LATER = {'data': {'augment': 'none', 'sampling': 'iid',
                        'as_mnist': False, 'digit_box': 0,
                        'image_size': 224, 'zca': 0.0, 'val_size': 0},
               'optim': {'ema_decay': 0.0},
               'distill': {'label_mode': 'hard', 'label_init_scale': 4.0,
                           'truncate_window': 0, 'dsa': '',
                           'dsa_strength': 1.0, 'dsa_mode': 'one'}}


def _what(c: dict) -> dict:
  """A config (JSON) without what does not change the run's results."""
  c = workdir_lib.without(c, HOW_NOT_WHAT)
  for group, fields in ADDED_LATER.items():
    if isinstance(c.get(group), dict):  # A copy: the caller's stays whole.
      c[group] = {k: v for k, v in c[group].items()
                  if not (k in fields and v == fields[k])}
  return c


def same_run(saved: dict, config: ml_collections.ConfigDict) -> bool:
  """Whether a saved config (JSON) describes the same run as `config`."""
  return _what(saved) == _what(json.loads(config.to_json()))


def _extends(saved: dict, config: ml_collections.ConfigDict,
             workdir: str) -> bool:
  """Whether `config` is the saved run with more iterations.

  Such a run goes on from its last checkpoint: iteration t depends only on
  the state before it and keys folded from t, never on num_iterations. Fewer
  iterations than saved are refused rather than silently ignored.
  """
  saved_iterations = saved.get('num_iterations')
  if (saved_iterations == config.num_iterations or not same_run(
      {**saved, 'num_iterations': config.num_iterations}, config)):
    return False
  if config.num_iterations < saved_iterations:
    raise WorkdirConflict(
        f'{workdir} holds a run of {saved_iterations} iterations; '
        f'num_iterations = {config.num_iterations} can only extend it, not '
        'shorten it; use another --workdir, or pass --fresh to start over')
  logging.info('Extending the run in %s from %d to %d iterations.', workdir,
               saved_iterations, config.num_iterations)
  return True


# What a run writes in its workdir; --fresh deletes it.
OUTPUTS = ('checkpoints', 'metrics.jsonl', 'results.json', 'distilled.npz',
           'distilled.png', 'curves.png')


def check_workdir(config: ml_collections.ConfigDict, workdir: str,
                  fresh: bool = False) -> None:
  """Refuses to mix this run with a different one already in the workdir.

  A run with more iterations extends the saved one (see `_extends`).
  """
  workdir_lib.guard(workdir, config, fresh, outputs=OUTPUTS, compare=_what,
                    extends=lambda saved: _extends(saved, config, workdir),
                    owned=('checkpoints',))


@dataclasses.dataclass(frozen=True)
class Program:
  """What one outer iteration computes, built from the config alone."""
  model: Any
  apply_fn: models.Apply  # The inner GD steps (differentiated twice).
  first_order_apply_fn: models.Apply  # The real batch and evaluation.
  num_classes: int
  labels_SxN: jax.Array  # The class of each distilled image.
  optimizer: Any
  ema: Any  # optax.ema of the distilled set, or None.
  step_fn: Callable  # (state, params0_I, train_x, train_y, key) -> (state, metrics)
  sample_inits: Callable  # key -> params0_I, the inits of one iteration.
  mesh: Any  # Inits are split over its devices; everything else replicated.


def real_batch_fns(config: ml_collections.ConfigDict,
                   num_examples: Optional[int]) -> dict[str, Any]:
  """`distill.train_step`'s batch_indices and augment for the config."""
  dc = config.data
  fns = {'batch_indices': None, 'augment': None}
  if dc.sampling != 'iid':
    if num_examples is None:
      raise ValueError('epochs sampling needs the training set size')
    # Checked here too, so that the error comes before compiling.
    real_batches.check_epochs(num_examples, config.real_batch_size)
    fns['batch_indices'] = functools.partial(
        real_batches.batch_indices, sampling=dc.sampling,
        num_examples=num_examples, batch_size=config.real_batch_size,
        epoch_key=run_keys(config.seed)['real_batches'])
  if dc.augment != 'none':
    fns['augment'] = functools.partial(real_batches.augment, name=dc.augment)
  return fns


def build_program(config: ml_collections.ConfigDict, num_classes: int,
                  image_shape: tuple[int, ...], unroll: int | bool = 1, *,
                  num_examples: Optional[int] = None) -> Program:
  """unroll: passed to the inner scans (True for exact FLOP counts);
  num_examples: the real training set's size (needed by epochs sampling)."""
  dc = config.distill
  model, apply_fn = build_model(config, num_classes, image_shape,
                                dc.images_per_class * num_classes)
  first_order_apply_fn = first_order_apply(config, model)
  labels_SxN = distill.distilled_labels(dc.steps, num_classes,
                                        dc.images_per_class)
  optimizer = distill.make_optimizer(config.optim.lr, config.optim.b1,
                                     config.optim.decay_every,
                                     config.optim.decay_factor)
  batching = 'vmap' if dc.batching == 'auto' else dc.batching
  ema = optax.ema(config.optim.ema_decay) if config.optim.ema_decay else None
  mesh = sharding.make_mesh()
  rep = sharding.replicated(mesh)
  sample_inits, inits_sharding, num_valid = _init_sampler(config, model,
                                                          image_shape, mesh)
  step_fn = jax.jit(
      functools.partial(distill.train_step, apply_fn=apply_fn,
                        labels_SxN=labels_SxN, optimizer=optimizer,
                        batch_size=config.real_batch_size, batching=batching,
                        remat=dc.remat, unroll=unroll, num_valid=num_valid,
                        real_apply_fn=first_order_apply_fn,
                        truncate_window=dc.truncate_window,
                        siamese_augment=augment.from_spec(
                            dc.dsa, dc.dsa_strength, dc.dsa_mode),
                        ema=ema,
                        real_chunk=distill.real_chunk_size(dc.real_chunk),
                        **real_batch_fns(config, num_examples)),
      in_shardings=(rep, inits_sharding, rep, rep, rep),
      out_shardings=(rep, rep))
  return Program(model, apply_fn, first_order_apply_fn, num_classes,
                 labels_SxN, optimizer, ema, step_fn, sample_inits, mesh)


def _init_sampler(config: ml_collections.ConfigDict, model, image_shape,
                  mesh) -> tuple[Callable, Any, Optional[int]]:
  """(sample_inits, their sharding, num_valid): key -> the inits of one
  iteration; num_valid: how many of them count (None: the one fixed init)."""
  dc = config.distill
  rep = sharding.replicated(mesh)
  if dc.init_mode in ('fixed', 'fixed_pretrained'):
    # One init cannot be split: every device runs it (same result anywhere).
    fixed = heldout_inits(config, model, image_shape, 1)
    fixed = sharding.put(sharding.to_host(fixed), rep)
    return (lambda key: fixed), rep, None
  # The inits are those a 1-device run samples; when they do not split
  # evenly over the devices, copies of the first pad them and are left out
  # of the loss, so results do not depend on the device count.
  num_valid = dc.num_inits
  extra = -num_valid % mesh.size
  pad = lambda a: jnp.concatenate([a] + [a[:1]] * extra)
  inits_sharding = sharding.split_inits(mesh)
  if dc.init_mode == 'random':
    draw = lambda key: inits.sample_params(model, key, num_valid,
                                           image_shape)
  else:  # random_pretrained: a fresh subset of the pool's training nets.
    pool = sharding.put(sharding.to_host(
        _pool(config, model, image_shape)['train']), rep)
    size = pretrained.pool_size(pool)
    if size < num_valid:
      raise errors.ConfigError(
          f'config.distill.num_inits = {num_valid} exceeds the {size} '
          f'training networks in {dc.pretrained_dir}')

    def draw(key):  # The same nets in every leaf.
      picks = jax.random.choice(key, size, (num_valid,), replace=False)
      return jax.tree.map(lambda a: a[picks], pool)
  sample_inits = jax.jit(lambda key: jax.tree.map(pad, draw(key)),
                         out_shardings=inits_sharding,
                         compiler_options=inits.QUICK_COMPILE)
  return sample_inits, inits_sharding, num_valid


def initial_state(config: ml_collections.ConfigDict, program: Program,
                  train_x: jax.Array, train_y: jax.Array) -> dict:
  """Iteration 0: the starting distilled set and a fresh optimizer."""
  dc = config.distill
  distilled = distill.init_distilled(
      run_keys(config.seed)['images'], program.labels_SxN,
      tuple(train_x.shape[1:]), dc.epochs, dc.lr_init, dc.image_init,
      train_x, train_y)
  distilled.update(distill.init_labels(dc.label_mode, program.labels_SxN,
                                       program.num_classes,
                                       dc.label_init_scale))
  state = {'distilled': distilled,
           'opt_state': program.optimizer.init(distilled),
           'step': jnp.zeros((), jnp.int32)}
  if program.ema is not None:
    state['ema'], state['ema_state'] = distilled, program.ema.init(distilled)
  if config.data.val_size:  # The set with the best validation accuracy yet.
    state['best'] = {'distilled': distilled,
                     'val_accuracy': jnp.full((), -1.0, jnp.float32),
                     'step': jnp.zeros((), jnp.int32)}
  return sharding.put(sharding.to_host(state),
                      sharding.replicated(program.mesh))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       fresh: bool = False) -> dict[str, Any]:
  """Distills a dataset as `config` says; returns the results dict."""
  config_checks.validate(config)
  # The data first: a split that does not fit is refused before the
  # workdir is claimed.
  data, val_xy = load_split_data(config)
  check_workdir(config, workdir, fresh)
  program = build_program(config, data.num_classes, data.image_shape,
                          num_examples=len(data.train_labels))
  train_xy = sharding.put((data.train_images, data.train_labels),
                          sharding.replicated(program.mesh))
  mngr = checkpoints.manager(workdir, config.checkpoints_to_keep)
  state = _resume(mngr, initial_state(config, program, *train_xy), workdir)
  evaluate_now = _evaluation_during(config, data, program, val_xy)
  writer = metrics.JsonlWriter(workdir, enabled=jax.process_index() == 0)
  if int(state['step']) == 0:
    # The starting accuracy, so every run's log shows what it gained.
    values = _accuracies(evaluate_now(state))
    state = _keep_best(state, values)
    writer.write(0, values)
    logging.info('Iteration 0: test accuracy %.4f', values['test_accuracy'])
  state = _train(config, workdir, program, train_xy, state, mngr, writer,
                 evaluate_now)
  return _finish(config, workdir, data, program, state, evaluate_now)


def _resume(mngr, state: dict, workdir: str) -> dict:
  """The state of the newest checkpoint that restores, else `state`."""
  restored_step, state = checkpoints.restore_latest(mngr, state)
  start = int(state['step'])
  if restored_step is not None:
    logging.info('Resuming from the checkpoint at iteration %d.', start)
  if jax.process_index() == 0:
    # What comes after the checkpoint (without one, iteration 0's
    # evaluation too) is logged again.
    metrics.keep_before(workdir, start + 1 if start else 0)
  return state


def _evaluation_during(config: ml_collections.ConfigDict,
                       data: datasets.Dataset, program: Program,
                       val_xy=None) -> Callable[[dict], dict]:
  """state -> {'test': summary, and with val_xy 'val': summary}: the
  accuracies of its distilled set on the models that training reports on
  (config.eval.num_models_during of them)."""
  params0_M = heldout_inits(config, program.model, data.image_shape,
                            config.eval.num_models_during)
  splits = {'test': (data.test_images, data.test_labels)}
  if val_xy is not None:
    splits['val'] = val_xy

  def evaluate_now(state: dict) -> dict:
    d = reported_set(state)
    accs = evaluate.evaluate_set_on(
        program.first_order_apply_fn, params0_M, d['images'],
        distill.inner_targets(d, program.labels_SxN),
        distill.lrs_from_raw(d['raw_lrs']), splits, program.mesh)
    return {name: evaluate.summarize(a) for name, a in accs.items()}

  return evaluate_now


def reported_set(state: dict) -> distill.Distilled:
  """The set that a state's evaluations, its kept best set and the run's
  outputs use: the moving average when the run keeps one, else the set."""
  return state['ema'] if 'ema' in state else state['distilled']


def _accuracies(acc: dict) -> dict[str, float]:
  """An evaluation's metric-line entries."""
  values = {'test_accuracy': acc['test']['mean'],
            'test_accuracy_std': acc['test']['std']}
  if 'val' in acc:
    values['val_accuracy'] = acc['val']['mean']
  return values


def _keep_best(state: dict, values: dict) -> dict:
  """`state` with its set as the best, if its validation accuracy (in
  `values`) beats the best one's; the first of equals is kept."""
  if 'best' not in state or 'val_accuracy' not in values:
    return state
  # Compared as stored (float32), so that an equal score never replaces.
  score = np.float32(values['val_accuracy'])
  if score <= np.float32(sharding.to_host(state['best']['val_accuracy'])):
    return state
  like = state['best']['val_accuracy']
  best = {'distilled': reported_set(state), 'step': state['step'],
          'val_accuracy': sharding.put(score, like.sharding)}
  return {**state, 'best': best}


def _train(config: ml_collections.ConfigDict, workdir: str,
           program: Program, train_xy, state: dict, mngr, writer,
           evaluate_now: Callable[[dict], dict]) -> dict:
  """The outer iterations from the state's step to config.num_iterations,
  logged, evaluated and checkpointed as the config says. On SIGTERM the
  iteration in progress is finished and saved, then errors.Stopped."""
  keys, rep = run_keys(config.seed), sharding.replicated(program.mesh)
  start = int(state['step'])
  t_last, it_last = time.time(), start
  # The bar closes on the way out, so whatever ends the loop (a stop, an
  # error) is said on a line of its own.
  with preemption.Watch() as watch, tqdm.tqdm(
      total=config.num_iterations, initial=start, desc='distill', unit='it',
      dynamic_ncols=True, disable=jax.process_index() != 0) as progress:
    for it in range(start, config.num_iterations):
      state, m = outer_iteration(program, state, train_xy, keys, it, rep)
      values = _finite(m, it, mngr)
      progress.update(1)
      done = it + 1
      logged, evaluated = due(config, done)
      if logged:
        values['sec_per_iter'] = (time.time() - t_last) / (done - it_last)
        _log(workdir, writer, state, done, values,
             evaluate_now if evaluated else None)
        if on_grid(config, done):  # The last set's turn comes in _finish.
          state = _keep_best(state, values)
        t_last, it_last = time.time(), done  # Evaluation time not counted.
        progress.set_postfix({k: f'{v:.4g}' for k, v in values.items()
                              if k in ('loss', 'test_accuracy')})
      stop = watch.requested(mngr, done - start)
      if (stop or done % config.checkpoint_every == 0 or
          done == config.num_iterations):
        checkpoints.save(mngr, done, state)
      if stop:  # At the last iteration too: the final evaluation can wait.
        raise errors.Stopped(
            f'stopped on request (SIGTERM) after iteration {done} of '
            f'{config.num_iterations}, saved in {mngr.directory}; the same '
            'command resumes from there')
  return state


def _finite(step_metrics: dict, it: int, mngr) -> dict[str, float]:
  """An iteration's metrics as floats; errors.Diverged if one is not finite
  (fail fast: the last checkpoint stays as it was, and loadable)."""
  values = {k: float(v) for k, v in sharding.to_host(step_metrics).items()}
  bad = [k for k, v in values.items() if not np.isfinite(v)]
  if bad:
    raise errors.Diverged(  # Counted from 1, as metrics.jsonl's steps.
        f'non-finite {", ".join(bad)} in iteration {it + 1} '
        f'({", ".join(f"{k}={values[k]}" for k in bad)}); '
        f'{checkpoints.kept(mngr)} ({mngr.directory})')
  return values


def on_grid(config: ml_collections.ConfigDict, done: int) -> bool:
  """Whether iteration `done` is one of every run's evaluations (every
  eval_every), whatever its num_iterations."""
  return bool(config.eval_every) and done % config.eval_every == 0


def due(config: ml_collections.ConfigDict, done: int) -> tuple[bool, bool]:
  """(logged, evaluated) for the iteration that makes `done`: a line every
  log_every, at the last iteration and at every evaluation (every
  eval_every, whether or not a multiple of log_every; with a validation
  split, at the last iteration too, so that the last set is a candidate)."""
  evaluated = on_grid(config, done)
  last = done == config.num_iterations
  evaluated = evaluated or bool(config.data.val_size and last)
  logged = evaluated or done % config.log_every == 0 or last
  return logged, evaluated


def _log(workdir: str, writer, state: dict, done: int, values: dict,
         evaluate_now: Callable[[dict], dict] | None) -> None:
  """Logs iteration `done` (adding its lrs and, given `evaluate_now`, test
  and validation accuracies to `values`) and redraws curves.png after an
  evaluation."""
  lrs = sharding.to_host(distill.lrs_from_raw(reported_set(state)['raw_lrs']))
  values['lr_mean'] = float(lrs.mean())
  evaluated = evaluate_now is not None
  if evaluated:
    values.update(_accuracies(evaluate_now(state)))
  writer.write(done, {**values, 'lrs': lrs})
  if evaluated and writer.enabled:
    viz.save_curves(os.path.join(workdir, 'curves.png'),
                    metrics.read(workdir))


def run_or_load(config: ml_collections.ConfigDict,
                workdir: str) -> dict[str, Any]:
  """A run's results: read back if the workdir finished this config, else run.

  Tables and sweeps call this per cell, so rerunning them skips finished
  cells and resumes unfinished ones from their checkpoints.
  """
  done = workdir_lib.read_json(os.path.join(workdir, 'results.json'))
  if done is not None and same_run(done['config'], config):
    return done
  return train_and_evaluate(config, workdir)


def without_runs(config: dict) -> dict:
  """A config (JSON) with every run config nested in it left out.

  The guard of a table's workdir compares the rest: each run's own workdir
  guards the run (and lets it be extended).
  """
  if all(k in config for k in ('data', 'model', 'distill', 'optim')):
    return {}
  return {k: without_runs(v) if isinstance(v, dict) else v
          for k, v in config.items()}


def outer_iteration(program: Program, state: dict, train_xy, keys: dict,
                    it: int, rep) -> tuple[dict, dict]:
  """Outer iteration `it`: its keys folded from the run's, one step."""
  k_batch, k_inits = jax.random.split(jax.random.fold_in(keys['train'], it))
  core = {k: state[k] for k in ('distilled', 'opt_state', 'step', 'ema',
                                'ema_state') if k in state}
  new_state, metrics_ = program.step_fn(core, program.sample_inits(k_inits),
                                        *train_xy, k_batch)
  # Whatever else the state holds (the best set) rides along unchanged.
  return {**state, **new_state,
          'step': sharding.put(np.int32(it + 1), rep)}, metrics_


def distilled_of(config, program: Program, state: dict, mean: np.ndarray,
                 std: np.ndarray) -> export.DistilledSet:
  """The distilled set a run's state holds, as saved to distilled.npz."""
  d = sharding.to_host(reported_set(state))
  targets = np.asarray(distill.inner_targets(d, program.labels_SxN))
  if targets.ndim == 3:  # Learned labels: each image's class is the argmax.
    labels_SxN, soft_labels = targets.argmax(-1).astype(np.int32), targets
  else:
    labels_SxN = targets
    soft_labels = export.one_hot(labels_SxN, program.num_classes)
  return export.DistilledSet(np.asarray(d['images']), labels_SxN,
                             np.asarray(distill.lrs_from_raw(d['raw_lrs'])),
                             np.asarray(mean), np.asarray(std),
                             config.distill.epochs, soft_labels,
                             config.distill.label_mode == 'raw',
                             float(config.data.zca))


def _finish(config, workdir, data, program: Program, state,
            evaluate_now: Callable[[dict], dict]) -> dict[str, Any]:
  """Final held-out evaluation and the run's output files (process 0).
  With a validation split, the set evaluated and saved is the best one."""
  if 'best' in state and not on_grid(config, int(state['step'])):
    # The last set is a candidate too, but only here: had its score gone
    # into the checkpoints, a run extended past this one would choose among
    # sets that the uninterrupted run never scored. Scored again rather than
    # carried from the last log line (the same models, so the same score),
    # so that a run resumed after its last checkpoint chooses alike.
    state = _keep_best(state, _accuracies(evaluate_now(state)))
  kept = state['best'] if 'best' in state else state
  distilled_set = distilled_of(config, program, kept, data.mean, data.std)
  params0_M = heldout_inits(config, program.model, data.image_shape,
                            config.eval.num_models)
  accs = evaluate.evaluate_set(program.first_order_apply_fn, params0_M,
                               distilled_set.images, distilled_set.targets,
                               distilled_set.lrs, data.test_images,
                               data.test_labels, program.mesh)
  results = {
      'test_accuracy': evaluate.summarize(accs),
      'dataset': config.data.name,
      'init_mode': config.distill.init_mode,
      'iterations': int(sharding.to_host(state['step'])),
      'config': json.loads(config.to_json()),
  }
  if 'best' in state:
    results['selected'] = {
        'step': int(sharding.to_host(state['best']['step'])),
        'val_accuracy': float(sharding.to_host(
            state['best']['val_accuracy']))}
  logging.info('Final test accuracy: %.4f +- %.4f over %d models',
               results['test_accuracy']['mean'],
               results['test_accuracy']['std'],
               results['test_accuracy']['n_models'])
  if jax.process_index() != 0:
    return results
  export.save_distilled(os.path.join(workdir, 'distilled.npz'), distilled_set)
  viz.save_grid(os.path.join(workdir, 'distilled.png'), distilled_set.images,
                distilled_set.lrs, data.mean, data.std,
                labels=distilled_set.labels,
                class_names=data.class_names)
  viz.save_curves(os.path.join(workdir, 'curves.png'), metrics.read(workdir))
  workdir_lib.write_json(os.path.join(workdir, 'results.json'), results)
  return results
