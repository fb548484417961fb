"""Figure 3: test accuracy against the number of GD steps, images fixed.

`run_figure3(config, workdir)` runs one distillation per (init mode, GD
steps) in `<workdir>/<mode>_steps<n>/` (each resumes; finished ones are read
back), then writes figure3.json, figure3.md, figure3.csv and figure3.png.
"""

import os

import jax
import matplotlib
import ml_collections

from ddistill import atomic_files
from ddistill import config_checks
from ddistill import train
from ddistill import workdir as workdir_lib

matplotlib.use('Agg')  # Files only; no display needed.
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top


def run_figure3(config: ml_collections.ConfigDict, workdir: str,
                fresh: bool = False) -> list[dict]:
  """Every point of the figure, run or read back; then the figure's files.

  fresh: first delete every run and output already in `workdir`.
  """
  config_checks.validate(config, 'figure3')
  modes = workdir_lib.names(config.init_modes)
  gd_steps = workdir_lib.numbers(config.gd_steps, 'gd_steps', int)
  workdir_lib.guard(workdir, config, fresh, outputs=_outputs(workdir),
                    compare=train.without_runs)
  points = []
  for mode in modes:
    for n in gd_steps:
      run = ml_collections.ConfigDict(config.run.to_dict())
      run.distill.init_mode = mode
      run.distill.epochs = n // run.distill.steps  # A whole number (checked).
      results = train.run_or_load(run, os.path.join(workdir,
                                                    f'{mode}_steps{n}'))
      points.append({'init_mode': mode, 'gd_steps': n,
                     'images_per_class': (run.distill.steps *
                                          run.distill.images_per_class),
                     **results['test_accuracy']})
  if jax.process_index() == 0:
    _write(points, workdir, config.run.data.name)
  return points


def _outputs(workdir: str) -> list[str]:
  """The figure's runs (<mode>_steps<n>/) and files in `workdir`."""
  runs = [name for name in (os.listdir(workdir) if os.path.isdir(workdir)
                            else ())
          if name.startswith(('fixed_steps', 'random_steps'))]
  return runs + [f'figure3.{ext}' for ext in ('json', 'csv', 'md', 'png')]


def _write(points: list[dict], workdir: str, dataset: str) -> None:
  workdir_lib.write_json(os.path.join(workdir, 'figure3.json'), points)
  header = list(points[0])
  workdir_lib.write_table(os.path.join(workdir, 'figure3'), *workdir_lib.table(
      header, [[p[k] for k in header] for p in points]))
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
