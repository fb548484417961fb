r"""Writes a distilled set in a layout other frameworks read without ddistill.

  python -m experiments.export /tmp/mnist/distilled.npz \
      --format image_folder --out /tmp/mnist/distilled_images

image_folder: one PNG per image (pixels un-normalized with the saved mean
and std), labels.json (labels, and soft labels when learned), lrs.json,
normalization.json and a README.txt that describes them
(ddistill.export.write_image_folder).
"""

from absl import flags as absl_flags

from ddistill import errors
from ddistill import export
from experiments import flags

_FORMAT = absl_flags.DEFINE_enum('format', 'image_folder', ['image_folder'],
                                 'The layout to write.')
_OUT = absl_flags.DEFINE_string('out', None, 'The folder to write; it must '
                                'not exist, or be empty.', required=True)
flags.define(workdir=None)


def main(argv):
  if len(argv) != 2:
    raise errors.UserError('give one distilled set: python -m '
                           'experiments.export DISTILLED.npz --out DIR')
  if not _OUT.value.strip():
    raise errors.UserError('--out is empty; give the folder to write')
  d = export.load_distilled(argv[1])
  written = export.write_image_folder(d, _OUT.value)
  print(f"wrote {written['images']} images to {_OUT.value} "
        f"({written['clipped']} pixel values clipped to [0, 255])")


if __name__ == '__main__':
  flags.run(main)
