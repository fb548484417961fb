"""ddistill: dataset distillation in JAX.

The public API (ddistill/api.py, docs/how_to.md): `load_distilled` a set,
`train_on` it, or `distill_arrays` you pass in; `save_distilled` writes one.
"""

from ddistill.api import distill_arrays, train_on
from ddistill.export import DistilledSet, load_distilled, save_distilled

__all__ = ['DistilledSet', 'distill_arrays', 'load_distilled',
           'save_distilled', 'train_on']
