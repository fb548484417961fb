r"""Writes torchvision's ImageNet AlexNet weights as an .npz ddistill reads.

Needs torch and torchvision (ddistill itself does not):

  pip install torch torchvision
  python -m experiments.convert_torchvision_alexnet --output alexnet.npz
  # or from a state_dict you already have:
  python -m experiments.convert_torchvision_alexnet --pth alexnet-owt.pth \
      --output alexnet.npz

The .npz keeps torchvision's names and layouts (`features.0.weight`
[64, 3, 11, 11], ..., `classifier.6.bias` [1000]); `ddistill.models.alexnet`
converts them to Flax's. Then make a pool for Table 3:

  python -m experiments.pretrain --config configs/pretrain.py:imagenet_alexnet \
      --config.weights=alexnet.npz --config.data.name=voc2007 --workdir POOLS/voc2007
"""

from absl import flags as absl_flags
import numpy as np

from ddistill import errors
from experiments import flags

_PTH = absl_flags.DEFINE_string(
    'pth', '', "A saved state_dict; default: download torchvision's "
    'IMAGENET1K_V1 weights.')
_OUTPUT = absl_flags.DEFINE_string('output', None, 'The .npz to write.',
                                   required=True)
flags.define(workdir=None)


def main(argv):
  del argv
  try:
    import torch  # pylint: disable=g-import-not-at-top
    if not _PTH.value:
      import torchvision  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise errors.UserError(f'this conversion needs torch and torchvision '
                           f'({e}); pip install torch torchvision') from None
  if _PTH.value:
    state = torch.load(_PTH.value, map_location='cpu')
  else:
    state = torchvision.models.alexnet(weights='IMAGENET1K_V1').state_dict()
  np.savez(_OUTPUT.value, **{k: v.detach().cpu().numpy().astype(np.float32)
                             for k, v in state.items()})
  print(f'wrote {len(state)} arrays to {_OUTPUT.value}')


if __name__ == '__main__':
  flags.run(main)
