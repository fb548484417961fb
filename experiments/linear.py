r"""Section 3.3: learned one-step distilled data for linear regression.

  python -m experiments.linear --config configs/linear.py --workdir /tmp/lin

Writes linear.json and linear.md: for each M, the excess loss over the global
minimum after one step from held-out inits, and ||I - (η/M) dᵀd||_F.
"""

import json
import os

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np

from ddistill import atomic_files
from ddistill.paper import linear

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/linear.py', 'Config file.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Folder for outputs.',
                               required=True)


def main(argv):
  del argv
  config, workdir = _CONFIG.value, _WORKDIR.value
  if config.dim < 1 or min(config.num_distilled) < 1:
    raise ValueError('config.dim and every config.num_distilled must be >= 1')
  os.makedirs(workdir, exist_ok=True)
  k_data, k_distill, k_heldout = jax.random.split(jax.random.key(config.seed),
                                                  3)
  problem = linear.make_problem(k_data, config.num_points, config.dim,
                                config.noise)
  theta0 = jax.random.normal(k_heldout, (config.num_heldout, config.dim, 1))
  rows = []
  for i, m in enumerate(config.num_distilled):
    distilled = linear.distill(jax.random.fold_in(k_distill, i), problem, m,
                               config.num_iterations,
                               config.inits_per_iteration, 1.0, config.lr)
    excess = linear.excess_losses(distilled, problem, theta0)
    rows.append({'M': m, 'D': config.dim,
                 'excess_loss_mean': float(excess.mean()),
                 'excess_loss_max': float(excess.max()),
                 'condition_residual': linear.condition_residual(distilled),
                 'residual_lower_bound': float(np.sqrt(max(config.dim - m,
                                                           0)))})
  lines = ['| M | D | excess loss, mean over held-out θ0 | max | '
           '‖I − (η/M) dᵀd‖_F | lower bound √(D − M) |', '|---' * 6 + '|']
  lines += [f"| {r['M']} | {r['D']} | {r['excess_loss_mean']:.3g} | "
            f"{r['excess_loss_max']:.3g} | {r['condition_residual']:.3g} | "
            f"{r['residual_lower_bound']:.3g} |" for r in rows]
  atomic_files.write_json(os.path.join(workdir, 'linear.json'), {
      'rows': rows, 'config': json.loads(config.to_json())})
  atomic_files.write_text(os.path.join(workdir, 'linear.md'),
                          '\n'.join(lines) + '\n')
  print('\n'.join(lines))


if __name__ == '__main__':
  app.run(main)
