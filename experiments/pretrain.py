r"""Pretrains a pool of networks on a source dataset, in parallel.

  python -m experiments.pretrain --config configs/pretrain.py:usps \
      --workdir /tmp/pools/usps

The pool (orbax) and info.json (settings, each net's test accuracy) go to
--workdir; distillation reads it through config.distill.pretrained_dir.
Rerunning the command reads the finished pool's info back.
"""

from ml_collections import config_flags

from ddistill.paper import pretraining
from experiments import flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/pretrain.py', 'Config file (path[:variant]).',
    lock_config=True)
_RUN = flags.define('Folder for the pool.')


def main(argv):
  del argv
  info = pretraining.run_pretrain(_CONFIG.value, _RUN.workdir.value,
                                  fresh=_RUN.fresh.value)
  if 'test_accuracy' not in info:  # A pool read from ImageNet weights.
    print(f"pool of {info['weights']} for {info['target']} written")
    return
  for split in ('train', 'heldout'):
    acc = info['test_accuracy'][split]
    print(f"{split}: {acc['n_models']} nets, test accuracy "
          f"{100 * acc['mean']:.2f} +- {100 * acc['std']:.2f}")


if __name__ == '__main__':
  flags.run(main)
