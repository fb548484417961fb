"""`run_pretrain(config, workdir)`: a pool of pretrained nets, saved and tested.

With `config.weights` set, the pool is instead an ImageNet-pretrained
AlexNet read from that file (Table 3): every net of the pool shares its
backbone and gets its own fresh classifier for the target's classes.
"""

import os
import shutil
import time

from absl import logging
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from ddistill import checkpoints
from ddistill import config_checks
from ddistill.models import alexnet
from ddistill import evaluate
from ddistill import inits
from ddistill import pretrained
from ddistill import train
from ddistill import workdir as workdir_lib
from ddistill.data import transfer


def pool_from_weights(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """A pool of AlexNets with the file's ImageNet weights, new classifiers."""
  num_classes = transfer.SPECS[config.data.name].num_classes
  state = alexnet.read_torchvision_npz(config.weights)
  kernel_init = inits.kernel_initializer(config.model.init,
                                         config.model.init_gain)
  root = train.run_keys(config.seed)['pool']
  nets = [alexnet.params_from_torchvision(state, num_classes,
                                          jax.random.fold_in(root, i),
                                          kernel_init, config.new_classifier)
          for i in range(config.num_train + config.num_heldout)]
  stacked = jax.tree.map(lambda *a: np.stack(a), *nets)
  pool = {'train': jax.tree.map(lambda a: a[:config.num_train], stacked),
          'heldout': jax.tree.map(lambda a: a[config.num_train:], stacked)}
  info = {'source': 'imagenet', 'weights': config.weights,
          'target': config.data.name, 'config': config.to_dict()}
  pretrained.save_pool(workdir, pool, info)
  return info


# chunks/: the nets trained so far, until the pool is saved.
POOL_OUTPUTS = ('params', 'info.json', 'chunks')
# Data fields that older pretrain configs held and never read: pools made
# with those still resume.
_UNREAD_DATA = ('val_size', 'augment', 'sampling')


def _compared(config: dict) -> dict:
  data = {k: v for k, v in config['data'].items() if k not in _UNREAD_DATA}
  return {**config, 'data': data}


def run_pretrain(config: ml_collections.ConfigDict, workdir: str,
                 fresh: bool = False) -> dict:
  """Makes the pool in `workdir`; returns its info (read back if made).

  fresh: delete the pool already in `workdir` first.
  """
  config_checks.validate(config, 'pretrain')
  workdir_lib.guard(workdir, config, fresh, outputs=POOL_OUTPUTS,
                    compare=_compared, owned=('params', 'chunks'))
  info = workdir_lib.read_json(os.path.join(workdir, 'info.json'))
  if info is not None:
    return info
  if config.weights:
    return pool_from_weights(config, workdir)
  return pool_from_training(config, workdir)


def pool_from_training(config: ml_collections.ConfigDict,
                       workdir: str) -> dict:
  """Trains the pool's nets from random inits and tests each on the data."""
  start = time.time()
  data = train.load_data(config)
  model, _ = train.build_model(config, data.num_classes, data.image_shape)
  apply_fn = train.first_order_apply(config, model)
  total = config.num_train + config.num_heldout
  chunks = []
  root = train.run_keys(config.seed)['pool']
  for i, first in enumerate(range(0, total, config.nets_per_chunk)):
    n = min(config.nets_per_chunk, total - first)
    chunks.append(_chunk(workdir, i, lambda i=i, n=n: pretrained.pretrain(
        model, jax.random.fold_in(root, i), data.train_images,
        data.train_labels, n, config.epochs, config.batch_size,
        config.optim.lr, config.optim.decay_every, config.optim.decay_factor,
        b1=config.optim.b1)))
  nets = jax.tree.map(lambda *a: np.concatenate(a), *chunks)
  pool = {'train': jax.tree.map(lambda a: a[:config.num_train], nets),
          'heldout': jax.tree.map(lambda a: a[config.num_train:], nets)}
  info = {'source': data.name, 'seconds': time.time() - start,
          'config': config.to_dict(), 'test_accuracy': {}}
  for split, params in pool.items():
    accs = evaluate.accuracy(apply_fn, params, data.test_images,
                             data.test_labels)
    info['test_accuracy'][split] = evaluate.summarize(accs)
  # A pool saved without its info.json (a kill between the two): the same
  # nets, trained again from the chunks; replaced.
  shutil.rmtree(os.path.join(workdir, 'params'), ignore_errors=True)
  pretrained.save_pool(workdir, pool, info)
  shutil.rmtree(os.path.join(workdir, 'chunks'), ignore_errors=True)
  return info


def _chunk(workdir: str, i: int, train_chunk) -> dict:
  """Chunk `i` of the pool's nets: read back from chunks/<i> if an earlier
  run of this workdir saved it, else `train_chunk()`, saved there, so that a
  killed run resumes at the chunk it was training."""
  path = os.path.join(os.path.abspath(workdir), 'chunks', str(i))
  with ocp.StandardCheckpointer() as ckpt:
    if os.path.isdir(path):
      try:
        return ckpt.restore(path)
      except Exception as e:  # pylint: disable=broad-except
        # Any damage, whatever layer reports it: trained again.
        checkpoints.quiet_reads_left_in_flight()
        logging.warning('Pretrained chunk %s does not restore (%s); '
                        'training it again.', path, str(e).splitlines()[0])
        shutil.rmtree(path, ignore_errors=True)  # Each process may try.
    nets = jax.device_get(train_chunk())
    ckpt.save(path, nets)
  return nets
