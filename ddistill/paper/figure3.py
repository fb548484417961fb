"""Figure 3: test accuracy against the number of GD steps, images fixed.

`run_figure3(config, workdir)` runs one distillation per (init mode, GD
steps) in `<workdir>/<mode>_steps<n>/` (each resumes; finished ones are read
back), then writes figure3.json, figure3.csv and figure3.png.
"""

import csv
import io
import os

import jax
import matplotlib
import ml_collections

from ddistill import atomic_files
from ddistill import train

matplotlib.use('Agg')  # Files only; no display needed.
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top


def run_figure3(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  modes = [m.strip() for m in config.init_modes.split(',') if m.strip()]
  bad = [m for m in modes if m not in ('fixed', 'random')]
  if bad or not modes:
    raise ValueError(f'config.init_modes: {config.init_modes!r}; use '
                     "'fixed', 'random' or 'fixed,random'")
  if any(n < 1 for n in config.gd_steps):
    raise ValueError(f'config.gd_steps must all be >= 1: {config.gd_steps}')
  points = []
  for mode in modes:
    for n in config.gd_steps:
      run = ml_collections.ConfigDict(config.run.to_dict())
      run.distill.init_mode = mode
      run.distill.epochs = n // run.distill.steps
      if run.distill.steps * run.distill.epochs != n:
        raise ValueError(f'{n} GD steps is not a multiple of '
                         f'config.run.distill.steps = {run.distill.steps}')
      results = train.run_or_load(run, os.path.join(workdir,
                                                    f'{mode}_steps{n}'))
      points.append({'init_mode': mode, 'gd_steps': n,
                     'images_per_class': (run.distill.steps *
                                          run.distill.images_per_class),
                     **results['test_accuracy']})
  if jax.process_index() == 0:
    _write(points, workdir, config.run.data.name)
  return points


def _write(points: list[dict], workdir: str, dataset: str) -> None:
  atomic_files.write_json(os.path.join(workdir, 'figure3.json'), points)
  buf = io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=list(points[0]))
  writer.writeheader()
  writer.writerows(points)
  atomic_files.write_text(os.path.join(workdir, 'figure3.csv'),
                          buf.getvalue())
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for mode in sorted({p['init_mode'] for p in points}):
    ps = [p for p in points if p['init_mode'] == mode]
    ax.errorbar([p['gd_steps'] for p in ps],
                [100 * p['mean'] for p in ps],
                yerr=[100 * p['std'] for p in ps], marker='o', capsize=3,
                label=f'{mode} init')
  ax.set_xscale('log')
  ticks = sorted({p['gd_steps'] for p in points})
  ax.set_xticks(ticks, [str(t) for t in ticks])
  ax.minorticks_off()
  ax.set_xlabel('GD steps (one batch of distilled images, reused)')
  ax.set_ylabel('test accuracy (%)')
  ax.set_title(f'{dataset}: accuracy vs. GD steps')
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  with atomic_files.replacing(os.path.join(workdir, 'figure3.png')) as tmp:
    fig.savefig(tmp, dpi=120)
  plt.close(fig)
