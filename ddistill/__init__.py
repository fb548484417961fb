"""ddistill: dataset distillation in JAX."""

from ddistill.export import DistilledSet, load_distilled, save_distilled

__all__ = ['DistilledSet', 'load_distilled', 'save_distilled']
