"""The image-folder export reads back with PIL and json alone."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from ddistill import export

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _distilled(channels, soft, seed=0, steps=2, n=3, size=5):
  """A set whose pixels lie inside [0, 1] (no clipping), normalized."""
  rng = np.random.default_rng(seed)
  mean = rng.uniform(0.2, 0.5, channels).astype(np.float32)
  std = rng.uniform(0.2, 0.4, channels).astype(np.float32)
  unit = rng.uniform(0, 1, (steps, n, size, size, channels))
  labels = np.tile(np.arange(n, dtype=np.int32), (steps, 1))
  soft_labels = None
  if soft:
    logits = rng.normal(size=(steps, n, 4))
    soft_labels = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))
    soft_labels = soft_labels.astype(np.float32)
    labels = soft_labels.argmax(-1).astype(np.int32)
  return export.DistilledSet(((unit - mean) / std).astype(np.float32),
                             labels, rng.uniform(0.01, 0.1, steps * 3).astype(
                                 np.float32), mean, std, 3, soft_labels)


def _read_back(folder):
  """The folder as a user without ddistill reads it."""
  with open(os.path.join(folder, 'labels.json')) as f:
    labels = json.load(f)
  with open(os.path.join(folder, 'lrs.json')) as f:
    lrs = json.load(f)
  with open(os.path.join(folder, 'normalization.json')) as f:
    norm = json.load(f)
  images = [np.asarray(Image.open(os.path.join(folder, e['file'])))
            for e in labels['images']]
  return labels, lrs, norm, images


@pytest.mark.parametrize('channels, soft', [(1, False), (3, True)])
def test_round_trip_within_quantization(tmp_path, channels, soft):
  d = _distilled(channels, soft)
  path = str(tmp_path / 'distilled.npz')
  export.save_distilled(path, d)
  out = str(tmp_path / 'folder')
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.export', path, '--format',
       'image_folder', '--out', out], cwd=REPO, capture_output=True,
      text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert 'wrote 6 images' in result.stdout

  labels, lrs, norm, images = _read_back(out)
  steps, n = d.labels.shape
  assert [(e['step'], e['index']) for e in labels['images']] == [
      (s, i) for s in range(steps) for i in range(n)]
  for e, pixels in zip(labels['images'], images):
    s, i = e['step'], e['index']
    assert pixels.dtype == np.uint8
    pixels = pixels.reshape(d.images.shape[2:])
    # Pixels back to the normalized values: off by at most half a level.
    restored = (pixels / 255.0 - np.asarray(norm['mean'])) / np.asarray(
        norm['std'])
    np.testing.assert_allclose(restored, d.images[s, i],
                               atol=0.5 / 255 / d.std.min() + 1e-5)
    assert e['label'] == d.labels[s, i]
    if soft:
      np.testing.assert_allclose(e['soft_label'], d.soft_labels[s, i],
                                 rtol=1e-6)
    else:
      assert 'soft_label' not in e
  assert labels['num_classes'] == d.soft_labels.shape[-1]
  assert lrs['steps'] == steps and lrs['epochs'] == 3
  np.testing.assert_allclose(lrs['lrs'], d.lrs, rtol=1e-6)
  np.testing.assert_allclose(norm['mean'], d.mean, rtol=1e-6)
  with open(os.path.join(out, 'README.txt')) as f:
    readme = f.read()
  assert 'labels.json' in readme and '0 of' in readme


def test_clipped_pixels_are_counted_and_a_full_folder_is_refused(tmp_path):
  d = _distilled(1, False)
  images = d.images.copy()
  images[0, 0, 0, 0, 0] = (1.5 - d.mean[0]) / d.std[0]  # Above white.
  images[1, 2, 1, 1, 0] = (-0.2 - d.mean[0]) / d.std[0]  # Below black.
  d = export.DistilledSet(images, d.labels, d.lrs, d.mean, d.std, d.epochs)
  out = str(tmp_path / 'folder')
  assert export.write_image_folder(d, out) == {'images': 6, 'clipped': 2}
  _, _, _, pngs = _read_back(out)
  assert pngs[0][0, 0] == 255 and pngs[5][1, 1] == 0
  with open(os.path.join(out, 'README.txt')) as f:
    assert '2 of 150 pixel values' in f.read()
  with pytest.raises(FileExistsError, match='not empty'):
    export.write_image_folder(d, out)
  assert sorted(os.listdir(tmp_path)) == ['folder']  # No temporary left.
  with pytest.raises(export.DataError, match='2-channel'):
    bad = np.zeros((1, 1, 4, 4, 2), np.float32)
    export.write_image_folder(export.DistilledSet(
        bad, np.zeros((1, 1), np.int32), np.ones(1, np.float32),
        np.zeros(2, np.float32), np.ones(2, np.float32), 1), str(tmp_path /
                                                                 'x'))


def test_the_command_names_a_missing_file_in_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.export', str(tmp_path / 'no.npz'),
       '--out', str(tmp_path / 'out')], cwd=REPO, capture_output=True,
      text=True, timeout=300)
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [line for line in result.stderr.splitlines()
            if not line.startswith(('I', 'W'))]  # absl's log lines.
  assert len(errors) == 1 and errors[0].startswith('error: '), result.stderr
  assert 'no.npz' in errors[0] and 'not found' in errors[0]
  assert 'Traceback' not in result.stderr


def test_a_zca_whitened_set_round_trips_and_is_not_exported_as_pngs(tmp_path):
  d = _distilled(1, False)
  d = export.DistilledSet(d.images, d.labels, d.lrs, d.mean, d.std, d.epochs,
                          zca=0.1)
  path = str(tmp_path / 'd.npz')
  export.save_distilled(path, d)
  assert export.load_distilled(path).zca == pytest.approx(0.1)
  with pytest.raises(export.DataError, match='ZCA-whitened'):
    export.write_image_folder(d, str(tmp_path / 'folder'))
  assert not os.path.exists(tmp_path / 'folder')


def _damaged(path, kind):
  """Writes a distilled-set file at `path` broken in the way `kind` says."""
  good = _distilled(1, False)
  export.save_distilled(str(path), good)
  blob = path.read_bytes()
  if kind == 'truncated':
    path.write_bytes(blob[:len(blob) // 2])
    return
  if kind == 'flipped bytes':  # Inside images.npy's data: a CRC mismatch.
    start = blob.index(b'images.npy') + 200
    path.write_bytes(blob[:start] + bytes(255 - b for b in blob[start:start +
                                                                64]) +
                     blob[start + 64:])
    return
  if kind == 'one array':
    with open(path, 'wb') as f:
      np.save(f, good.images)
    return
  with np.load(path) as f:
    arrays = dict(f)
  field, value = {
      'epochs as a vector': ('epochs', np.array([3, 3])),
      'zero epochs': ('epochs', np.array(0)),
      'NaN images': ('images', np.where(good.images > 0, np.nan, 0)),
      'infinite lrs': ('lrs', np.full_like(good.lrs, np.inf)),
      'negative lrs': ('lrs', -good.lrs),
      'float labels': ('labels', good.labels.astype(np.float32)),
      'zero std': ('std', np.zeros(1, np.float32)),
      'NaN soft labels': ('soft_labels', np.full((2, 3, 3), np.nan)),
      'mean for 5 channels': ('mean', np.zeros(5, np.float32)),
  }[kind]
  arrays[field] = value
  with open(path, 'wb') as f:
    np.savez(f, **arrays)


@pytest.mark.parametrize('kind, message', [
    ('truncated', 'not a distilled-set .npz'),
    ('flipped bytes', 'damaged .npz'),
    ('one array', 'one array, not a distilled-set .npz'),
    ('epochs as a vector', r'epochs has shape \(2,\), not one number'),
    ('zero epochs', 'epochs = 0, not an integer >= 1'),
    ('NaN images', 'images hold NaN or infinity'),
    ('infinite lrs', 'lrs hold NaN or infinity'),
    ('negative lrs', 'lrs < 0'),
    ('float labels', 'labels are float32, not integers'),
    ('zero std', 'std <= 0'),
    ('NaN soft labels', 'soft_labels hold NaN or infinity'),
    ('mean for 5 channels', r'mean \(5,\) and std \(1,\) do not fit 1-channel'),
])
def test_a_damaged_or_unusable_distilled_file_is_named(tmp_path, kind,
                                                       message):
  path = tmp_path / 'distilled.npz'
  _damaged(path, kind)
  with pytest.raises(export.DataError, match=f'distilled.npz: {message}'):
    export.load_distilled(str(path))


def test_files_of_earlier_layouts_still_load(tmp_path):
  """No soft_labels, raw_labels or zca (files from before they existed),
  and one mean and std for all channels: as a number, or as [1] (the
  continual runner's memories)."""
  good = _distilled(3, False)
  for mean, std in ((np.float32(0.5), np.float32(0.25)),
                    (np.zeros(1, np.float32), np.ones(1, np.float32))):
    path = tmp_path / f'old{np.ndim(mean)}.npz'
    np.savez(path, images=good.images, labels=good.labels, lrs=good.lrs,
             mean=mean, std=std, epochs=np.int32(good.epochs))
    d = export.load_distilled(str(path), num_classes=4)
    assert d.soft_labels.shape == (*good.labels.shape, 4)
    assert not d.raw_labels and d.zca == 0.0
    np.testing.assert_array_equal(d.images, good.images)
    assert d.mean.shape == d.std.shape == (1,)  # One for all channels.
    export.write_image_folder(d, str(tmp_path / f'png{np.ndim(mean)}'))


def test_save_writes_the_path_given_and_never_an_unusable_set(tmp_path):
  good = _distilled(1, False)
  path = tmp_path / 'set.data'  # Not .npz: written as named all the same.
  export.save_distilled(str(path), good)
  assert sorted(os.listdir(tmp_path)) == ['set.data']
  np.testing.assert_array_equal(export.load_distilled(str(path)).lrs,
                                good.lrs)
  with pytest.raises(export.DataError, match='std <= 0'):
    export.DistilledSet(good.images, good.labels, good.lrs, good.mean,
                        np.zeros(1), good.epochs)
  good.images[0, 0, 0, 0, 0] = np.nan  # Changed in place after it was made.
  with pytest.raises(export.DataError, match='images hold NaN'):
    export.save_distilled(str(path), good)
  assert sorted(os.listdir(tmp_path)) == ['set.data']
  assert np.all(np.isfinite(export.load_distilled(str(path)).images))
