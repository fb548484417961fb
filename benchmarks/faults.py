r"""Soak test: a quick MNIST run SIGKILLed again and again, resumed each time.

  python benchmarks/faults.py --kills 20

Runs `configs/mnist.py:quick` once uninterrupted (the reference), then again
in another workdir, killing it with SIGKILL at --kills moments and rerunning
the same command after each. The moments are random points of the reference
run's life, in order, the last two as it writes its final outputs; each
rerun is killed where it reaches the next one (its set-up counted again).
Half the kills come right at their moment, the other half (and the last two)
at the first new temporary checkpoint folder or output file after it, i.e.
while a checkpoint or an output file is being written. After the kills, one
last rerun finishes.

A kill is survived when every output file it left is whole (results.json
and config.json parse, distilled.npz loads, the PNGs open, each line of
metrics.jsonl parses) and the next run resumed from the newest checkpoint
left, with no checkpoint found damaged. The last line printed says how many
kills were tried and survived, and whether the final distilled.npz is
bitwise equal to the reference's.
"""

import argparse
import glob
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # Run from anywhere without installing.
from ddistill import export  # pylint: disable=g-import-not-at-top

RESUMED = re.compile(r'Resuming from the checkpoint at iteration (\d+)\.')


def _command(workdir: str, args) -> list[str]:
  return [sys.executable, '-m', 'experiments.mnist', '--config',
          'configs/mnist.py:quick', '--workdir', workdir,
          f'--config.checkpoint_every={args.checkpoint_every}',
          f'--config.num_iterations={args.iterations}']


def _start(workdir: str, args, log_path: str) -> subprocess.Popen:
  with open(log_path, 'w') as log:
    return subprocess.Popen(_command(workdir, args), cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT)


def _checkpoint_steps(workdir: str) -> list[int]:
  folder = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(folder):
    return []
  return sorted(int(d) for d in os.listdir(folder) if d.isdigit())


def _temporary(workdir: str) -> dict[str, set[str]]:
  """Temporary checkpoint folders and output files now in the workdir."""
  return {'checkpoint': set(glob.glob(os.path.join(workdir, 'checkpoints',
                                                   '*-tmp*'))),
          'output': set(glob.glob(os.path.join(workdir, '*.tmp*')))}


def _new_temporary(workdir: str, before: dict[str, set[str]]) -> dict:
  """Those not there `before`: being written now (a kill leaves strays)."""
  return {kind: paths - before[kind]
          for kind, paths in _temporary(workdir).items()}


def _reference(args) -> dict:
  """Runs the reference; returns its workdir and the timing of its phases."""
  workdir = os.path.join(args.workdir, 'reference')
  start = time.time()
  proc = _start(workdir, args, os.path.join(args.workdir, 'reference.log'))
  seen = {}  # Checkpoint step: when it appeared.
  while proc.poll() is None:
    for step in _checkpoint_steps(workdir):
      seen.setdefault(step, time.time())
    time.sleep(0.01)
  if proc.returncode != 0:
    sys.exit(f'error: the reference run failed; see {args.workdir}/'
             'reference.log')
  end = time.time()
  first, last = min(seen), max(seen)
  per_iteration = (seen[last] - seen[first]) / max(last - first, 1)
  loop = per_iteration * args.iterations
  # Set-up: loading, compiling, iteration 0's evaluation.
  return {'workdir': workdir, 'total': end - start, 'loop': loop,
          'startup': seen[last] - start - loop, 'finish': end - seen[last]}


def _whole_files(workdir: str) -> list[str]:
  """The output files a kill left broken (none, if it did no harm)."""
  broken = []
  for name in ('config.json', 'results.json'):
    path = os.path.join(workdir, name)
    try:
      if os.path.exists(path):
        with open(path) as f:
          json.load(f)
    except ValueError:
      broken.append(name)
  for path in glob.glob(os.path.join(workdir, '*.png')):
    if '.tmp' in path:
      continue
    try:
      with Image.open(path) as image:
        image.verify()
    except Exception:  # pylint: disable=broad-except
      broken.append(os.path.basename(path))
  path = os.path.join(workdir, 'distilled.npz')
  if os.path.exists(path):
    try:
      export.load_distilled(path)
    except Exception:  # pylint: disable=broad-except
      broken.append('distilled.npz')
  path = os.path.join(workdir, 'metrics.jsonl')
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          json.loads(line)
        except ValueError:
          broken.append('metrics.jsonl')
          break
  return broken


def _resumed_from(log_path: str):
  """(step the run resumed from or None, whether it found damage)."""
  with open(log_path) as f:
    text = f.read()
  found = RESUMED.search(text)
  return (int(found.group(1)) if found else None,
          'does not restore' in text)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--kills', type=int, default=20)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--checkpoint_every', type=int, default=20,
                      help='quick runs 200 iterations; its default (250) '
                      'would checkpoint only at the end')
  parser.add_argument('--iterations', type=int, default=200,
                      help="quick's 200; fewer for a smoke run")
  parser.add_argument('--workdir', default=None,
                      help='default: a new temporary folder')
  args = parser.parse_args()
  if args.kills < 2 or args.iterations < 1 or args.checkpoint_every < 1:
    # The last two kills land as the run writes its final outputs.
    parser.error('--kills must be >= 2, --iterations and --checkpoint_every '
                 '>= 1')
  args.workdir = args.workdir or tempfile.mkdtemp(prefix='ddistill_faults_')
  os.makedirs(args.workdir, exist_ok=True)
  if not os.environ.get('DDISTILL_DATA_DIR'):
    sys.exit('error: set $DDISTILL_DATA_DIR to the folder holding mnist/')
  rng = random.Random(args.seed)
  t0 = time.time()

  ref = _reference(args)
  print(f"reference run: {ref['total']:.0f} s (set-up {ref['startup']:.0f} "
        f"s, iterations {ref['loop']:.0f} s, finish {ref['finish']:.0f} s)",
        flush=True)

  workdir = os.path.join(args.workdir, 'killed')
  # The kills' moments: random points of the reference run's life, in
  # order, and the last two as it writes its final outputs.
  end_of_loop = ref['startup'] + ref['loop']
  moments = sorted(rng.uniform(0, ref['total'])
                   for _ in range(args.kills - 2)) + [end_of_loop] * 2
  tried = survived = attempts = 0
  pending = None  # (kill number, newest checkpoint it left, files broken).
  landed = {'checkpoint': 0, 'output': 0, 'elsewhere': 0}
  while tried < args.kills:
    attempts += 1
    if attempts > 5 * args.kills:
      sys.exit('error: too many runs ended before they could be killed')
    log_path = os.path.join(args.workdir, f'run{attempts}.log')
    done = max(_checkpoint_steps(workdir), default=0)
    moment = moments[tried]
    # Kills 1, 3, 5...: at their moment; 2, 4, 6...: at the first write
    # after it of a checkpoint (while iterating) or else of an output (the
    # metrics rewritten on resuming, the final outputs).
    aim = None
    if tried % 2 == 1 or moment >= end_of_loop:
      aim = ('checkpoint' if ref['startup'] <= moment < end_of_loop and
             done < args.iterations else 'output')
    # The moment, in this rerun: it sets up again (as long as the
    # reference did), then skips the iterations before its checkpoint.
    skipped = ref['loop'] * done / args.iterations
    delay = max(moment - skipped, min(moment, ref['startup']))
    before = _temporary(workdir)
    started = time.time()
    deadline = started + delay
    # An output write aimed at in the set-up may have passed (the metrics
    # are rewritten early on): then the kill comes as the set-up ends, not
    # after every iteration.
    latest = (started + ref['startup'] if aim == 'output' and
              moment < ref['startup'] else float('inf'))
    proc = _start(workdir, args, log_path)
    while proc.poll() is None:
      now = time.time()
      if now >= deadline and (not aim or now >= latest or
                              _new_temporary(workdir, before)[aim]):
        break
      time.sleep(0.001 if aim else 0.01)
    if proc.poll() is None:
      proc.send_signal(signal.SIGKILL)
    killed = proc.wait() == -signal.SIGKILL
    if pending:  # This run resumed after the last kill: did it survive?
      number, newest, broken = pending
      step, damaged = _resumed_from(log_path)
      ok = not broken and not damaged and step == newest
      survived += ok
      if not ok:
        print(f'kill {number} NOT survived: broken {broken}, damaged '
              f'checkpoint {damaged}, resumed from {step} instead of '
              f'{newest}', flush=True)
      pending = None
    if not killed:
      if proc.returncode != 0:
        sys.exit(f'error: run {attempts} failed; see {log_path}')
      continue  # It finished before the kill; rerun and try again.
    tried += 1
    writing = _new_temporary(workdir, before)
    where = ('checkpoint' if writing['checkpoint'] else
             'output' if writing['output'] else 'elsewhere')
    landed[where] += 1
    newest = max(_checkpoint_steps(workdir), default=None)
    pending = (tried, newest, _whole_files(workdir))
    aimed = {'checkpoint': ' (aimed at a checkpoint write)',
             'output': ' (aimed at an output write)'}.get(aim, '')
    print(f'kill {tried}{aimed}: '
          f'{time.time() - started:.1f} s into the run, during '
          f"{where + ' write' if where != 'elsewhere' else 'neither write'}; "
          f'newest checkpoint {newest}', flush=True)

  log_path = os.path.join(args.workdir, 'final.log')
  proc = _start(workdir, args, log_path)
  if proc.wait() != 0:
    sys.exit(f'error: the final rerun failed; see {log_path}')
  number, newest, broken = pending
  step, damaged = _resumed_from(log_path)
  if not broken and not damaged and step == newest:
    survived += 1
  else:
    print(f'kill {number} NOT survived: broken {broken}, damaged checkpoint '
          f'{damaged}, resumed from {step} instead of {newest}')

  a = export.load_distilled(os.path.join(ref['workdir'], 'distilled.npz'))
  b = export.load_distilled(os.path.join(workdir, 'distilled.npz'))
  equal = all(np.array_equal(getattr(a, f), getattr(b, f))
              for f in export.FIELDS)
  with open(os.path.join(ref['workdir'], 'results.json')) as f:
    ref_acc = json.load(f)['test_accuracy']
  with open(os.path.join(workdir, 'results.json')) as f:
    acc = json.load(f)['test_accuracy']
  aside = glob.glob(os.path.join(workdir, 'checkpoints', '*.corrupt*'))
  strays = sum(map(len, _temporary(workdir).values()))
  print(f"kills landed: {landed['checkpoint']} during a checkpoint write, "
        f"{landed['output']} during an output write, {landed['elsewhere']} "
        f'elsewhere; runs that ended before their kill: {attempts - tried}; '
        f'checkpoints moved aside: {len(aside)}; stray temporary files left: '
        f'{strays}')
  print(f'final test accuracy {acc["mean"]:.4f} (reference '
        f'{ref_acc["mean"]:.4f}); outputs in {args.workdir}')
  print(f'faults tried: {tried}, survived: {survived}; final distilled.npz '
        f"bitwise equal to the uninterrupted run's: {'yes' if equal else 'NO'}"
        f'; wall time {time.time() - t0:.0f} s')
  return 0 if equal and survived == tried else 1


if __name__ == '__main__':
  sys.exit(main())
