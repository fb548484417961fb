r"""Distills MNIST (or any dataset the config names).

  python -m experiments.mnist --config configs/mnist.py --workdir /tmp/mnist
  python -m experiments.mnist --config configs/mnist.py:official_random \
      --workdir /tmp/mnist_random --config.eval.num_models=100

Rerunning the same command resumes from the workdir's latest checkpoint that
restores (a damaged one is moved aside to checkpoints/<step>.corrupt); rerun
with a larger --config.num_iterations, it extends a finished run.
"""

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from ddistill import train
from experiments import quiet_logs
from experiments import user_errors

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/mnist.py', 'Experiment config file (path[:variant]).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Folder for outputs.',
                               required=True)
_FRESH = flags.DEFINE_bool(
    'fresh', False, 'Delete the checkpoints and metrics already in --workdir '
    'and start over.')
_DISTRIBUTED = flags.DEFINE_bool(
    'distributed', False, 'Multi-process run: call jax.distributed.initialize '
    '(on TPU pods and SLURM/Open MPI clusters it finds its peers itself).')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'host:port of process 0, where the '
    'cluster is not detected (e.g. several GPU hosts by hand).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None,
                                      'Processes in all, with the above.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None,
                                   "This process's index, with the above.")


def main(argv):
  del argv
  quiet_logs.install()
  if _DISTRIBUTED.value:
    if jax.config.jax_platforms in (None, '', 'cpu'):
      # Cross-process collectives on CPU go through gloo.
      jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value,
                               _PROCESS_ID.value)
  logging.info('JAX devices: %s', jax.devices())
  results = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                                     fresh=_FRESH.value)
  acc = results['test_accuracy']
  print(f"test_accuracy {acc['mean']:.4f} +- {acc['std']:.4f} "
        f"over {acc['n_models']} models; outputs in {_WORKDIR.value}")


if __name__ == '__main__':
  app.run(user_errors.one_line(main))
