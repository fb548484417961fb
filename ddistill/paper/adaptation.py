"""What Tables 2 and 3 share: runs adapted to a target set, their outer
loop given in epochs of that set, as the official code gives it."""

import ml_collections

EPOCH_FIELDS = ('target_epochs', 'target_decay_epochs')


def outer_loop_in_epochs(config: ml_collections.ConfigDict,
                         run: ml_collections.ConfigDict,
                         train_size: int) -> None:
  """Sets run.num_iterations and run.optim.decay_every from the table
  config's `target_epochs` and `target_decay_epochs` (each 0 = keep the
  run's), as epochs of `train_size` images in batches of
  run.real_batch_size, a last partial batch counted as the official
  loader's: as many updates as the official code makes."""
  batches = -(-train_size // run.real_batch_size)
  if config.target_epochs:
    run.num_iterations = config.target_epochs * batches
  if config.target_decay_epochs:
    run.optim.decay_every = config.target_decay_epochs * batches

