"""The distilled set as a framework-neutral `.npz` file, and loading it back."""

import dataclasses

import numpy as np

from ddistill import atomic_files
from ddistill.errors import DataError

FIELDS = ('images', 'labels', 'lrs', 'mean', 'std', 'epochs')


@dataclasses.dataclass(frozen=True)
class DistilledSet:
  """Train on it by applying step s = t % steps with lr `lrs[t]`, t < len(lrs)."""
  images: np.ndarray  # [steps, n, H, W, C] float32, normalized like the data.
  labels: np.ndarray  # [steps, n] int32.
  lrs: np.ndarray  # [steps * epochs] float32, already positive (softplus).
  mean: np.ndarray  # [C] per-channel mean used to normalize, in [0, 1] units.
  std: np.ndarray  # [C].
  epochs: int

  @property
  def steps(self) -> int:
    return self.images.shape[0]


def save_distilled(path: str, distilled: DistilledSet) -> None:
  """Writes atomically: a crash never leaves a half-written file at `path`."""
  with atomic_files.replacing(path) as tmp:
    np.savez(tmp, images=np.asarray(distilled.images, np.float32),
             labels=np.asarray(distilled.labels, np.int32),
             lrs=np.asarray(distilled.lrs, np.float32),
             mean=np.asarray(distilled.mean, np.float32),
             std=np.asarray(distilled.std, np.float32),
             epochs=np.asarray(distilled.epochs, np.int32))


def load_distilled(path: str) -> DistilledSet:
  """Loads a file written by `save_distilled`, checking its shapes agree."""
  try:
    with np.load(path) as f:
      missing = [k for k in FIELDS if k not in f.files]
      if missing:
        raise DataError(f'{path}: missing arrays {missing}')
      d = DistilledSet(f['images'], f['labels'], f['lrs'], f['mean'],
                       f['std'], int(f['epochs']))
  except FileNotFoundError:
    raise DataError(f'{path}: file not found') from None
  except (OSError, ValueError, EOFError) as e:
    raise DataError(f'{path}: not a distilled-set .npz ({e})') from None
  if d.images.ndim != 5 or d.labels.shape != d.images.shape[:2]:
    raise DataError(f'{path}: images {d.images.shape} and labels '
                    f'{d.labels.shape} do not fit [steps, n, H, W, C] / '
                    '[steps, n]')
  if d.lrs.shape != (d.steps * d.epochs,):
    raise DataError(f'{path}: {d.lrs.shape[0]} lrs for {d.steps} steps x '
                    f'{d.epochs} epochs')
  return d
