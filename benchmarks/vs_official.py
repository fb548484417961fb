r"""Times ours and the official PyTorch code side by side, in paired runs.

  python benchmarks/vs_official.py --setting a --pairs 5
  python benchmarks/vs_official.py --setting b --pairs 5

Settings (a) and (b) of `outer_step.py`: MNIST, LeNet, 10 steps x 3 epochs,
one image per class per step, real batch 1,024; (a) a fixed init, (b) 4
random inits per iteration. Each pair runs `outer_step.py` and the official
trainer (`../shared/peer/peer_official_torch.py`) one after the other, in
alternating order, so both see the same machine. The peer needs
`../shared/peer/setup_peer.sh` once (torch from PyPI, a snapshot of the
official repository, outside this repository). Prints one line per pair and,
last, `ours=... official=... ratio=...`: medians over the pairs, and the
median of the per-pair ratios (ours / official; below 1 is faster).
"""

import os
import re
import statistics
import subprocess
import sys

from absl import app
from absl import flags

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, '..', '..', 'shared')

_SETTING = flags.DEFINE_enum('setting', 'a', ['a', 'b'], 'Setting.')
_PAIRS = flags.DEFINE_integer('pairs', 5, 'Paired runs.', lower_bound=1)
_ITERS = flags.DEFINE_integer('iterations', 15, 'Timed iterations per run '
                              '(each side reports its median).', lower_bound=1)
_PEER_DIR = flags.DEFINE_string(
    'peer_dir', os.path.expanduser('~/.cache/ddistill-peer'),
    'Where setup_peer.sh put the official source (src/) and its venv/.')
_PEER_SCRIPT = flags.DEFINE_string(
    'peer_script', os.path.join(SHARED, 'peer', 'peer_official_torch.py'),
    'The script that drives the official trainer.')
_MNIST_DIR = flags.DEFINE_string(
    'mnist_dir', os.path.join(SHARED, 'data', 'mnist'),
    'MNIST idx files (.gz), for the peer.')


def _sec_per_iter(command: list[str]) -> float:
  run = subprocess.run(command, capture_output=True, text=True, check=False,
                       cwd=os.path.join(HERE, '..'))
  found = re.findall(r'sec_per_iter[= ]([0-9.eE+-]+)', run.stdout)
  if run.returncode or not found:
    sys.exit(f'{command[1]} failed (exit {run.returncode}): '
             f'{(run.stderr or run.stdout).strip().splitlines()[-1:]}')
  return float(found[-1])


def main(argv):
  del argv
  python = os.path.join(_PEER_DIR.value, 'venv', 'bin', 'python')
  if not os.path.exists(python):
    sys.exit(f'no official-code peer in {_PEER_DIR.value}: run '
             f'{os.path.join(SHARED, "peer", "setup_peer.sh")} GIT_DIR first')
  for path in (_PEER_SCRIPT.value, _MNIST_DIR.value):  # Before any timing.
    if not os.path.exists(path):
      sys.exit(f'{path}: not found')
  setting = _SETTING.value
  ours_cmd = [sys.executable, 'benchmarks/outer_step.py', '--setting', setting,
              '--repeats', str(_ITERS.value), '--flops=false']
  nets, kind = ('1', 'fixed') if setting == 'a' else ('4', 'random')
  peer_cmd = [python, _PEER_SCRIPT.value, os.path.join(_PEER_DIR.value, 'src'),
              _MNIST_DIR.value, str(_ITERS.value + 1), nets, kind]
  ours, official = [], []
  for pair in range(_PAIRS.value):
    order = ((ours, ours_cmd), (official, peer_cmd))
    for times, command in order if pair % 2 == 0 else order[::-1]:
      times.append(_sec_per_iter(command))
    print(f'pair {pair}: ours {ours[-1]:.4f} s, official {official[-1]:.4f} s,'
          f' ratio {ours[-1] / official[-1]:.3f}', flush=True)
  ratios = [o / p for o, p in zip(ours, official)]
  print(f'setting={setting} pairs={len(ratios)} '
        f'ours={statistics.median(ours):.4f} '
        f'official={statistics.median(official):.4f} '
        f'ratio={statistics.median(ratios):.3f}')


if __name__ == '__main__':
  app.run(main)
