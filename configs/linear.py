"""Section 3.3: one-GD-step distillation of least-squares regression.

`python -m experiments.linear --config configs/linear.py --workdir DIR`
"""

import ml_collections


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  if variant:  # Like every config file's unknown variant (default.py).
    raise ValueError(f'unknown config variant {variant!r}; configs/linear.py '
                     'has none (override its fields with --config.*)')
  config = ml_collections.ConfigDict()
  config.seed = 0  # The one seed: data, distilled starts, inits.
  config.num_points = 500  # N real data-target pairs.
  config.dim = 10  # D features.
  config.noise = 0.1  # Std of the target noise.
  config.num_distilled = '2,5,9,10,12,20'  # Values of M to learn, comma-separated.
  config.num_iterations = 3000  # Adam steps per distilled set.
  config.inits_per_iteration = 8  # Random θ0 ~ N(0, I) per step.
  config.lr = 0.01  # Adam step size (cosine-decayed to 0).
  config.num_heldout = 200  # Fresh θ0 the result is measured on.
  return config
