"""One ml_collections config file per experiment (`--config FILE:VARIANT`)."""

import sys

if __name__ == 'ddistill.configs':
  # The config files import each other by their checkout name (`from configs
  # import default`); installed with pip, that name is this package. (So a
  # process cannot also import a `configs` package of its own by that name.)
  sys.modules.setdefault('configs', sys.modules[__name__])
