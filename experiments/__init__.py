"""Command-line entry points, one module per experiment.

From a checkout: `python -m experiments.mnist --config configs/mnist.py`.
Installed with pip, this folder is `ddistill.experiments` and configs/ is
`ddistill.configs` (setup.py), so no top-level package of those names is
installed: `python -m ddistill.experiments.mnist --config PATH`.
"""

import importlib
import sys

if __name__ == 'ddistill.experiments':
  # The experiments import each other and the configs by their checkout
  # names (`from experiments import flags`, `from configs import mnist`); in
  # a process started as `python -m ddistill.experiments.NAME`, those names
  # are the installed copies (ddistill.configs names itself `configs`).
  sys.modules.setdefault('experiments', sys.modules[__name__])
  importlib.import_module('ddistill.configs')
