"""Pictures of a run: the distilled images, and its curves."""

import numpy as np
from PIL import Image, ImageDraw

from ddistill import atomic_files


def to_pixels(images: np.ndarray, mean: np.ndarray,
              std: np.ndarray) -> np.ndarray:
  """Undoes the normalization and clips to uint8 pixels."""
  unit = np.asarray(images) * std + mean
  return (np.clip(unit, 0.0, 1.0) * 255).round().astype(np.uint8)


def save_grid(path: str, images_SxNxHxWxC: np.ndarray, lrs_T: np.ndarray,
              mean: np.ndarray, std: np.ndarray, scale: int = 2,
              labels=None, class_names=()) -> None:
  """A PNG grid: row s shows step s's images and the lrs it is applied with.

  labels: the class of each image, [S, N] (or [N] for every row), written
    above it (by name where `class_names` gives one): once over the columns
    where every row has the same classes, else above each row.
  """
  steps, n, h, w, c = images_SxNxHxWxC.shape
  pixels = to_pixels(images_SxNxHxWxC, mean, std)
  lrs_ExS = np.asarray(lrs_T).reshape(-1, steps)
  label_w, pad, strip = 150, 2, 14
  labels_SxN = (None if labels is None else
                np.broadcast_to(np.asarray(labels), (steps, n)))
  per_row = labels_SxN is not None and bool((labels_SxN != labels_SxN[0]).any())
  top = strip if labels_SxN is not None and not per_row else 0
  cell_h, cell_w = h * scale + pad, w * scale + pad
  row_h = cell_h + (strip if per_row else 0)
  canvas = Image.new('RGB', (label_w + n * cell_w, top + steps * row_h),
                     'white')
  draw = ImageDraw.Draw(canvas)

  def write_classes(y, labels_N):
    draw.text((4, y + 1), 'class', fill='black')
    for i, label in enumerate(labels_N):
      name = class_names[label] if len(class_names) > label else str(label)
      draw.text((label_w + i * cell_w + 2, y + 1), name, fill='black')

  if top:
    write_classes(0, labels_SxN[0])
  for s in range(steps):
    y = top + s * row_h
    if per_row:
      write_classes(y, labels_SxN[s])
      y += strip
    if len(lrs_ExS) <= 5:
      lrs = ', '.join(f'{lr:.3g}' for lr in lrs_ExS[:, s])
    else:  # Long unrolls: the range of the step's lrs.
      lrs = (f'{lrs_ExS[:, s].min():.3g} to {lrs_ExS[:, s].max():.3g}\n'
             f'({len(lrs_ExS)} applied)')
    draw.text((4, y + 2), f'step {s}\nlr {lrs}', fill='black')
    for i in range(n):
      tile = pixels[s, i]
      tile = Image.fromarray(tile[..., 0] if c == 1 else tile)
      tile = tile.convert('RGB').resize((w * scale, h * scale),
                                        Image.NEAREST)
      canvas.paste(tile, (label_w + i * cell_w, y))
  with atomic_files.replacing(path) as tmp:
    canvas.save(tmp)


def save_curves(path: str, records: list[dict]) -> None:
  """A PNG of a run's metrics.jsonl records against outer iterations.

  Panels: the outer loss, the test accuracy of the held-out inits (mean and
  +- std; validation accuracy too where a run has it), and the learned lrs
  (mean, with min to max shaded).
  """
  # A bare Figure (not pyplot): no display backend, none of pyplot's state.
  # Imported here: matplotlib adds most of a second to every start-up.
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(13, 3.6))
  ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
  loss = [(r['step'], r['loss']) for r in records if 'loss' in r]
  if loss:
    ax_loss.plot(*zip(*loss), marker='.')
  ax_loss.set(xlabel='outer iteration', ylabel='outer loss', yscale='log')
  acc = [(r['step'], r['test_accuracy'], r.get('test_accuracy_std', 0.0))
         for r in records if 'test_accuracy' in r]
  if acc:
    steps, mean, std = map(np.asarray, zip(*acc))
    ax_acc.plot(steps, mean, marker='.', label='test')
    ax_acc.fill_between(steps, mean - std, mean + std, alpha=0.3)
  val = [(r['step'], r['val_accuracy']) for r in records
         if 'val_accuracy' in r]
  if val:  # The split that picks the kept set (data.val_size).
    ax_acc.plot(*zip(*val), marker='.', label='validation')
    ax_acc.legend()
  ax_acc.set(xlabel='outer iteration', ylabel='accuracy')
  lrs = [(r['step'], np.asarray(r['lrs'])) for r in records if 'lrs' in r]
  if lrs:
    steps = [s for s, _ in lrs]
    ax_lr.plot(steps, [l.mean() for _, l in lrs], marker='.', label='mean')
    ax_lr.fill_between(steps, [l.min() for _, l in lrs],
                       [l.max() for _, l in lrs], alpha=0.3, label='min-max')
    ax_lr.legend()
  ax_lr.set(xlabel='outer iteration', ylabel='learned lr')
  fig.tight_layout()
  with atomic_files.replacing(path) as tmp:
    fig.savefig(tmp, dpi=90)
