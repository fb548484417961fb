"""The distilled set as a framework-neutral `.npz` file, and loading it back;
and as a folder of PNGs with JSON labels and lrs (`write_image_folder`)."""

import dataclasses
import json
import os
import shutil
from typing import Optional
import zipfile
import zlib

import numpy as np
from PIL import Image

from ddistill import atomic_files
from ddistill import viz
from ddistill.errors import DataError

FIELDS = ('images', 'labels', 'lrs', 'mean', 'std', 'epochs')
# Rows of soft labels sum to 1 within float32 rounding.
SUM_TOLERANCE = 1e-4


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """[..., num_classes] float32 rows: 1 at each label, 0 elsewhere."""
  labels = np.asarray(labels)
  return (labels[..., None] == np.arange(num_classes)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class DistilledSet:
  """Train on it by applying step s = t % steps with lr `lrs[t]`, t < len(lrs)."""
  images: np.ndarray  # [steps, n, H, W, C] float32, normalized like the data.
  labels: np.ndarray  # [steps, n] int32: each image's class (argmax).
  lrs: np.ndarray  # [steps * epochs] float32, already positive (softplus).
  mean: np.ndarray  # [C] (or one for all) mean used to normalize, in [0, 1].
  std: np.ndarray  # [C] (or one for all).
  epochs: int
  # [steps, n, K] float32: what each image is trained towards (the loss is
  # -sum_k t_k log p_k). Rows sum to 1, unless `raw_labels`. None: one-hot of
  # `labels`, K = labels.max() + 1.
  soft_labels: Optional[np.ndarray] = None
  # True: `soft_labels` are raw labels (label_mode 'raw'), unnormalised.
  raw_labels: bool = False
  # > 0: the images are in ZCA-whitened space (data.zca, this eps), not
  # `mean`/`std`-normalized pixels.
  zca: float = 0.0

  def __post_init__(self):
    if self.soft_labels is None:  # Frozen: set once, here.
      object.__setattr__(self, 'soft_labels', one_hot(
          self.labels, int(np.max(self.labels, initial=-1)) + 1))
    for name in ('mean', 'std'):  # One number for all channels: as [1].
      object.__setattr__(self, name, np.atleast_1d(getattr(self, name)))
    _check(self)

  @property
  def steps(self) -> int:
    return self.images.shape[0]

  @property
  def targets(self) -> np.ndarray:
    """What a network trains towards: `labels` [steps, n] when the soft
    labels are one-hot (hard labels, trained as the run evaluated them,
    with integer labels), else `soft_labels` [steps, n, K]."""
    num_classes = self.soft_labels.shape[-1]
    if np.array_equal(self.soft_labels, one_hot(self.labels, num_classes)):
      return self.labels
    return self.soft_labels


def check_normalization(mean: np.ndarray, std: np.ndarray,
                        channels: int) -> None:
  """DataError unless mean and std are finite, std > 0, one per channel or
  one for all."""
  mean, std = np.asarray(mean), np.asarray(std)
  fits = ((channels,), (1,), ())
  if mean.shape not in fits or std.shape not in fits:
    raise DataError(f'mean {mean.shape} and std {std.shape} do not fit '
                    f'{channels}-channel images')
  for name, value in (('mean', mean), ('std', std)):
    if (not np.issubdtype(value.dtype, np.number) or
        not np.all(np.isfinite(value))):
      raise DataError(f'{name} hold NaN, infinity or no numbers')
  if np.any(std <= 0):
    raise DataError('std <= 0')


def _check(d: DistilledSet) -> None:
  """DataError saying what makes `d` unusable: shapes that do not fit
  together, NaN or infinity, lrs or labels < 0, std <= 0, soft labels that
  are not distributions (unless raw) or cover fewer classes than labels."""
  images, labels, lrs = map(np.asarray, (d.images, d.labels, d.lrs))
  mean, std, soft = map(np.asarray, (d.mean, d.std, d.soft_labels))
  if not np.issubdtype(labels.dtype, np.integer):
    raise DataError(f'labels are {labels.dtype}, not integers')
  if isinstance(d.epochs, bool) or not isinstance(
      d.epochs, (int, np.integer)) or d.epochs < 1:
    raise DataError(f'epochs = {d.epochs!r}, not an integer >= 1')
  if (images.ndim != 5 or labels.shape != images.shape[:2] or
      not images.shape[0] or not images.shape[1]):
    raise DataError(f'images {images.shape} and labels {labels.shape} do '
                    'not fit [steps, n, H, W, C] / [steps, n], steps and n '
                    '>= 1')
  if lrs.shape != (images.shape[0] * d.epochs,):
    raise DataError(f'{lrs.shape} lrs for {images.shape[0]} steps x '
                    f'{d.epochs} epochs')
  check_normalization(mean, std, images.shape[-1])
  if soft.ndim != 3 or soft.shape[:2] != labels.shape:
    raise DataError(f'soft_labels {soft.shape} do not fit labels '
                    f'{labels.shape} as [steps, n, classes]')
  for name, value in (('images', images), ('lrs', lrs),
                      ('soft_labels', soft)):
    if not np.issubdtype(value.dtype, np.number):
      raise DataError(f'{name} are {value.dtype}, not numbers')
    if not np.all(np.isfinite(value)):
      raise DataError(f'{name} hold NaN or infinity')
  if np.any(lrs < 0):
    raise DataError('lrs < 0')
  if np.any(labels < 0) or np.any(labels >= soft.shape[-1]):
    raise DataError(f'labels outside [0, {soft.shape[-1]}), the classes of '
                    'soft_labels (or num_classes, for a file without them)')
  if not d.raw_labels and (soft.min(initial=0) < 0 or np.abs(
      soft.sum(-1) - 1).max(initial=0) > SUM_TOLERANCE):
    raise DataError('soft_labels rows are not distributions (non-negative, '
                    'summing to 1)')


def save_distilled(path: str, distilled: DistilledSet) -> None:
  """Writes atomically: a crash never leaves a half-written file at `path`
  (named as given: np.savez appends .npz to a name only, not a file)."""
  _check(distilled)  # Its arrays may have changed in place since.
  with atomic_files.replacing(path) as tmp, open(tmp, 'wb') as f:
    np.savez(f, images=np.asarray(distilled.images, np.float32),
             labels=np.asarray(distilled.labels, np.int32),
             lrs=np.asarray(distilled.lrs, np.float32),
             mean=np.asarray(distilled.mean, np.float32),
             std=np.asarray(distilled.std, np.float32),
             epochs=np.asarray(distilled.epochs, np.int32),
             soft_labels=np.asarray(distilled.soft_labels, np.float32),
             raw_labels=np.asarray(distilled.raw_labels, bool),
             zca=np.asarray(distilled.zca, np.float32))


def _read_npz(path: str) -> dict[str, np.ndarray]:
  """Every array in the .npz at `path`, read whole; DataError if it is not
  one (missing, truncated, damaged, or a single .npy array)."""
  try:
    f = np.load(path)
  except FileNotFoundError:
    raise DataError(f'{path}: file not found') from None
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise DataError(f'{path}: not a distilled-set .npz ({e})') from None
  if not isinstance(f, np.lib.npyio.NpzFile):
    raise DataError(f'{path}: one array, not a distilled-set .npz')
  try:
    with f:
      return {name: f[name] for name in f.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise DataError(f'{path}: damaged .npz ({e})') from None


def _scalar(arrays: dict[str, np.ndarray], name: str, path: str):
  value = arrays[name]
  if value.shape != ():
    raise DataError(f'{path}: {name} has shape {value.shape}, not one number')
  return value.item()


def load_distilled(path: str,
                   num_classes: Optional[int] = None) -> DistilledSet:
  """Loads a file written by `save_distilled`, checking its shapes agree
  and its values are usable (finite, lrs >= 0, std > 0).

  num_classes: K of the one-hot soft labels given to files saved before
  soft labels existed (default: labels.max() + 1).
  """
  f = _read_npz(path)
  missing = [k for k in FIELDS if k not in f]
  if missing:
    raise DataError(f'{path}: missing arrays {missing}')
  soft_labels = f.get('soft_labels')
  if soft_labels is None and num_classes is not None:
    soft_labels = one_hot(f['labels'], num_classes)
  raw = bool(_scalar(f, 'raw_labels', path)) if 'raw_labels' in f else False
  zca = float(_scalar(f, 'zca', path)) if 'zca' in f else 0.0
  epochs = _scalar(f, 'epochs', path)
  try:
    d = DistilledSet(f['images'], f['labels'], f['lrs'], f['mean'],
                     f['std'], epochs, soft_labels, raw, zca)
  except DataError as e:  # What is wrong with it, after the file's name.
    raise DataError(f'{path}: {e}') from None
  return d


IMAGE_FOLDER_README = """\
A distilled dataset (ddistill: Wang et al., "Dataset Distillation"), as
plain files any framework can read.

images/step_SSS/IIII.png
    Image IIII of distilled step SSS: 8-bit grayscale or RGB pixels.
labels.json
    {{"num_classes": K, "images": [{{"file": ..., "step": s, "index": i,
    "label": class, "soft_label": [K values, only with learned labels:
    probabilities, or unnormalised targets when "raw_labels" is true]}},
    ...], "raw_labels": ...}}: one entry per PNG, in step order.
lrs.json
    {{"steps": S, "epochs": E, "lrs": [S * E learning rates]}}. The set was
    made for this training: for t = 0 .. S * E - 1, one gradient-descent
    step on all images of step t % S with learning rate lrs[t], on the
    cross-entropy to their labels (soft labels where given:
    -sum_k soft_label[k] * log p[k]). The field's
    standard evaluation instead trains on all images together with SGD.
normalization.json
    {{"mean": [...], "std": [...]}} per channel (one entry: the same for
    every channel), in [0, 1] pixel units: the networks saw
    (pixel / 255 - mean) / std; do the same to these PNGs.

{clipped} of {pixels} pixel values fell outside [0, 255] and were clipped,
and every value was rounded to a whole level; the .npz this came from holds
the exact values.
"""


def write_image_folder(d: DistilledSet, out_dir: str) -> dict:
  """The set as one PNG per image, labels.json, lrs.json,
  normalization.json and README.txt (IMAGE_FOLDER_README) in `out_dir`.

  The folder is written beside `out_dir` and renamed into place, so it
  appears whole or not at all; an `out_dir` that exists and is not empty is
  refused. Returns {'images': count, 'clipped': pixel values clipped}.
  """
  steps, n, _, _, channels = d.images.shape
  if d.zca:
    raise DataError(f'this set is ZCA-whitened (data.zca = {d.zca:g}): PNGs '
                    'and normalization.json cannot carry whitened images; '
                    'use the .npz')
  if channels not in (1, 3):
    raise DataError(f'{channels}-channel images have no PNG format; '
                    'only 1 (grayscale) and 3 (RGB)')
  out_dir = os.path.abspath(out_dir)
  if os.path.isdir(out_dir) and os.listdir(out_dir):
    raise FileExistsError(f'{out_dir} exists and is not empty; choose '
                          'another folder or remove it')
  unit = d.images * d.std + d.mean
  clipped = int(np.sum((unit < 0) | (unit > 1)))
  pixels = viz.to_pixels(d.images, d.mean, d.std)
  soft = d.targets.ndim == 3  # Learned labels, not one-hot.
  entries = []
  tmp = f'{out_dir}.tmp{os.getpid()}'
  shutil.rmtree(tmp, ignore_errors=True)  # Left by a killed export.
  try:
    for s in range(steps):
      os.makedirs(os.path.join(tmp, 'images', f'step_{s:03d}'))
      for i in range(n):
        name = f'images/step_{s:03d}/{i:04d}.png'
        tile = pixels[s, i, :, :, 0] if channels == 1 else pixels[s, i]
        Image.fromarray(tile).save(os.path.join(tmp, name))
        entry = {'file': name, 'step': s, 'index': i,
                 'label': int(d.labels[s, i])}
        if soft:
          entry['soft_label'] = [float(p) for p in d.soft_labels[s, i]]
        entries.append(entry)
    files = {
        'labels.json': {'num_classes': int(d.soft_labels.shape[-1]),
                        'images': entries, 'raw_labels': bool(d.raw_labels)},
        'lrs.json': {'steps': steps, 'epochs': int(d.epochs),
                     'lrs': [float(lr) for lr in d.lrs]},
        'normalization.json': {'mean': [float(m) for m in d.mean],
                               'std': [float(v) for v in d.std]},
    }
    for name, value in files.items():
      with open(os.path.join(tmp, name), 'w') as f:
        json.dump(value, f, indent=1)
    with open(os.path.join(tmp, 'README.txt'), 'w') as f:
      f.write(IMAGE_FOLDER_README.format(clipped=clipped,
                                         pixels=d.images.size))
    if os.path.isdir(out_dir):
      os.rmdir(out_dir)  # Empty (checked above).
    os.replace(tmp, out_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return {'images': steps * n, 'clipped': clipped}
