r"""Times one outer iteration (meta-gradient and optimizer update).

  python benchmarks/outer_step.py --setting a
  python benchmarks/outer_step.py --setting d --unroll 2000
  python benchmarks/outer_step.py --setting d --unroll 100 --profile_dir /tmp/d

Settings:
  a  MNIST, LeNet, fixed init, 10 steps x 3 epochs, 100 images, batch 1024
  b  the same with 4 random inits per iteration (--inits to change)
  c  CIFAR-10, AlexCifarNet, fixed init, 10 x 3 steps, 100 images
  d  MNIST, LeNet, one step of 100 images applied --unroll T times

The step timed is the one training runs (`train.build_program`). Timing does
not depend on pixel values, so the training set is random data of the
dataset's shape (60,000 or 50,000 images). The last line printed is
`sec_per_iter=... peak_mem_mb=... gflop=... gflops=...`: median seconds of
--repeats iterations after compilation, peak memory (host RSS on CPU, device
memory otherwise), the iteration's FLOPs from XLA's cost analysis of the same
step with its scans unrolled, and GFLOP/s.
"""

import resource
import statistics
import sys
import time

from absl import flags
import jax

sys.path.insert(0, '.')  # Run from the repo root without installing.
from configs import mnist as mnist_config  # pylint: disable=g-import-not-at-top
from ddistill import config_checks
from ddistill import train
from experiments import flags as experiment_flags

_SETTING = flags.DEFINE_enum('setting', 'a', ['a', 'b', 'c', 'd'], 'Setting.')
_UNROLL = flags.DEFINE_integer('unroll', 30, 'T for setting d.',
                               lower_bound=1)
_INITS = flags.DEFINE_integer('inits', 4, 'Inits per iteration in setting b.',
                              lower_bound=1)
_REPEATS = flags.DEFINE_integer('repeats', 10, 'Timed iterations.',
                                lower_bound=1)
_BATCHING = flags.DEFINE_string('batching', 'auto', 'auto | vmap | map.')
_CONV = flags.DEFINE_string('conv_impl', 'auto',
                            'Inner steps: auto | xla | matmul | banded | '
                            'split | blocks.')
_CONV_FIRST = flags.DEFINE_string('first_order_conv_impl', 'auto',
                                  'Real batch: auto | xla | matmul | banded | '
                                  'split | blocks.')
_BATCH = flags.DEFINE_integer('real_batch_size', 1024, 'Real images per '
                              'iteration (smaller for smoke runs).',
                              lower_bound=1)
_EPOCHS = flags.DEFINE_integer('epochs', 0, 'Passes over the steps in '
                               'settings a to c; 0 keeps the setting\'s 3.',
                               lower_bound=0)
_PROFILE = flags.DEFINE_string('profile_dir', '', 'If set, writes a jax '
                                'profiler trace of the last timed iteration '
                                'there (TensorBoard or Perfetto); tracing '
                                'slows that iteration, so use --repeats 3 '
                                'or more.')
_REMAT = flags.DEFINE_bool('remat', True, 'Recompute inner steps in the '
                            'backward pass (distill.remat).')
_REAL_CHUNK = flags.DEFINE_integer('real_chunk', -1, 'Real images per pass '
                                   '(distill.real_chunk; -1 auto, 0 all).')
_SCAN_UNROLL = flags.DEFINE_integer('scan_unroll', 1, 'Inner scans\' unroll '
                                    'factor (0 unrolls them fully).')
_FLOPS = flags.DEFINE_bool('flops', True, 'Count FLOPs (compiles the step '
                           'again, unrolled; slow for large --unroll).')


def setting_config(setting: str, unroll: int, num_inits: int):
  config = mnist_config.get_config('official_fixed')
  config.distill.batching = _BATCHING.value
  config.model.conv_impl = _CONV.value
  config.model.first_order_conv_impl = _CONV_FIRST.value
  config.real_batch_size = _BATCH.value
  config.distill.remat = _REMAT.value
  config.distill.real_chunk = _REAL_CHUNK.value
  if _EPOCHS.value:
    config.distill.epochs = _EPOCHS.value
  if setting == 'b':
    config.distill.init_mode = 'random'
    config.distill.num_inits = num_inits
  elif setting == 'c':
    config.data.name = 'cifar10'
    config.model.name = 'alexcifarnet'
  elif setting == 'd':
    config.distill.steps = 1
    config.distill.images_per_class = 10
    config.distill.epochs = unroll
  config_checks.validate(config)  # A bad --conv_impl, say: one line.
  return config


def _unrolled_flops(config, train_x, train_y, key) -> float:
  """XLA's FLOP count of the step with its scans fully unrolled.

  XLA's cost analysis counts a loop body once, whatever the trip count;
  unrolled, every step is counted.
  """
  shape = tuple(train_x.shape[1:])
  program = train.build_program(config, 10, shape, unroll=True)
  state = train.initial_state(config, program, train_x, train_y)
  k_batch, k_inits = jax.random.split(key)
  compiled = program.step_fn.lower(state, program.sample_inits(k_inits),
                                   train_x, train_y, k_batch).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost.get('flops', float('nan')))


def count_flops(config, train_x, train_y, key) -> float:
  """FLOPs of one iteration. Long unrolls: exact linear extrapolation.

  An iteration costs a + b * T for T applied steps, so for large T (where
  compiling the unrolled step would take long) it is counted at T = 1 and
  T = 2 epochs and extrapolated.
  """
  epochs = config.distill.epochs
  if config.distill.steps * epochs <= 100:
    return _unrolled_flops(config, train_x, train_y, key)
  counts = []
  for e in (1, 2):
    small = config.copy_and_resolve_references()
    small.distill.epochs = e
    counts.append(_unrolled_flops(small, train_x, train_y, key))
  return counts[0] + (epochs - 1) * (counts[1] - counts[0])


def peak_memory_mb() -> float:
  device = jax.devices()[0]
  if device.platform == 'cpu':
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  stats = device.memory_stats() or {}
  return stats.get('peak_bytes_in_use', float('nan')) / 2**20


def main(argv):
  del argv
  config = setting_config(_SETTING.value, _UNROLL.value, _INITS.value)
  shape = (32, 32, 3) if config.data.name == 'cifar10' else (28, 28, 1)
  num_train = 50000 if config.data.name == 'cifar10' else 60000
  kx, ky, kstep = jax.random.split(jax.random.key(0), 3)
  train_x = jax.random.normal(kx, (num_train, *shape))
  train_y = jax.random.randint(ky, (num_train,), 0, 10)
  program = train.build_program(config, 10, shape,
                                unroll=_SCAN_UNROLL.value or True)
  state = train.initial_state(config, program, train_x, train_y)
  state = {k: v for k, v in state.items() if k != 'step'}

  def one_iteration(state, i):
    # Keys drawn as train.outer_iteration draws them.
    k_batch, k_inits = jax.random.split(jax.random.fold_in(kstep, i))
    params0_I = program.sample_inits(k_inits)
    state, metrics = program.step_fn(state, params0_I, train_x, train_y,
                                     k_batch)
    jax.block_until_ready(metrics)
    return state

  t0 = time.perf_counter()
  state = one_iteration(state, 0)
  compile_s = time.perf_counter() - t0
  times = []
  for i in range(1, _REPEATS.value + 1):
    trace = _PROFILE.value and i == _REPEATS.value
    if trace:
      jax.profiler.start_trace(_PROFILE.value, create_perfetto_trace=True)
    t0 = time.perf_counter()
    state = one_iteration(state, i)
    times.append(time.perf_counter() - t0)
    if trace:
      jax.profiler.stop_trace()
  sec = statistics.median(times)
  peak = peak_memory_mb()
  gflop = float('nan')
  if _FLOPS.value:
    gflop = count_flops(config, train_x, train_y,
                        jax.random.fold_in(kstep, 0)) / 1e9
  print(f'device={jax.devices()[0].device_kind} devices={jax.device_count()} '
        f'setting={_SETTING.value} '
        f'unroll={config.distill.steps * config.distill.epochs} '
        f'inits={config.distill.num_inits if config.distill.init_mode == "random" else 1} '
        f'compile_s={compile_s:.1f} min={min(times):.4f} max={max(times):.4f}')
  print(f'sec_per_iter={sec:.4f} peak_mem_mb={peak:.0f} gflop={gflop:.2f} '
        f'gflops={gflop / sec:.1f}')


experiment_flags.define(workdir=None)  # --traceback; errors as one line.

if __name__ == '__main__':
  experiment_flags.run(main)
