"""Pictures of the distilled images: one row per step, labelled with its lrs."""

import numpy as np
from PIL import Image, ImageDraw


def to_pixels(images: np.ndarray, mean: np.ndarray,
              std: np.ndarray) -> np.ndarray:
  """Undoes the normalization and clips to uint8 pixels."""
  unit = np.asarray(images) * std + mean
  return (np.clip(unit, 0.0, 1.0) * 255).round().astype(np.uint8)


def save_grid(path: str, images_SxNxHxWxC: np.ndarray, lrs_T: np.ndarray,
              mean: np.ndarray, std: np.ndarray, scale: int = 2) -> None:
  """A PNG grid: row s shows step s's images and the lrs it is applied with."""
  steps, n, h, w, c = images_SxNxHxWxC.shape
  pixels = to_pixels(images_SxNxHxWxC, mean, std)
  lrs_ExS = np.asarray(lrs_T).reshape(-1, steps)
  label_w, pad = 150, 2
  cell_h, cell_w = h * scale + pad, w * scale + pad
  canvas = Image.new('RGB', (label_w + n * cell_w, steps * cell_h), 'white')
  draw = ImageDraw.Draw(canvas)
  for s in range(steps):
    lrs = ', '.join(f'{lr:.3g}' for lr in lrs_ExS[:, s])
    draw.text((4, s * cell_h + 2), f'step {s}\nlr {lrs}', fill='black')
    for i in range(n):
      tile = pixels[s, i]
      tile = Image.fromarray(tile[..., 0] if c == 1 else tile)
      tile = tile.convert('RGB').resize((w * scale, h * scale),
                                        Image.NEAREST)
      canvas.paste(tile, (label_w + i * cell_w, s * cell_h))
  canvas.save(path)
