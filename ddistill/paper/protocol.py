"""The paper's evaluation protocol for sets of real images (Section 4).

A set is trained like distilled data, full-batch GD from held-out inits, with
every learning rate of a grid crossed with every number of GD steps of a
grid, and once more with the distilled lrs, one per step as learned; the
best of these cells is reported as mean ± std over all (set, model) pairs.
As in the paper, the best cell is picked on the test accuracy itself, so
these figures are upper bounds on what a baseline would get with its
settings chosen beforehand.
"""

import dataclasses
from typing import Optional, Sequence

import numpy as np
from jax.sharding import Mesh

from ddistill.paper import baselines
from ddistill import distill
from ddistill import evaluate


@dataclasses.dataclass(frozen=True)
class Cell:
  """Accuracies of one (lr, steps) combination over all sets and models."""
  lr: str  # A number, or 'distilled' for the learned lr schedule.
  steps: int
  accs: np.ndarray  # [num_sets * num_models]

  def summary(self) -> dict:
    return {'lr': self.lr, 'steps': self.steps,
            **evaluate.summarize(self.accs)}


def cnn_grid(apply_fn: distill.ApplyFn, params0_M: distill.Params,
             sets: Sequence[baselines.RealSet], lrs: Sequence[float],
             step_counts: Sequence[int], test_x: np.ndarray,
             test_y: np.ndarray, distilled_lrs: Optional[np.ndarray] = None,
             mesh: Optional[Mesh] = None,
             minibatches: int = 0) -> list[Cell]:
  """Every (lr, steps) cell for these sets on the held-out inits params0_M.

  distilled_lrs: the learned schedule [T]; trains each set for T steps with
  those lrs, the whole set in every step. minibatches: if > 0, each set is
  split into this many minibatches (one image per class in each, for a
  class-fastest set of 10 per class and 10 minibatches) applied in order,
  and `step_counts` count passes over the set, as in the paper's Table 2.
  """
  if minibatches:
    return _minibatch_grid(apply_fn, params0_M, sets, lrs, step_counts,
                           test_x, test_y, distilled_lrs, mesh, minibatches)
  cells = []
  for lr in lrs:
    accs_SxCxM = np.stack([
        evaluate.evaluate_fixed_lr(apply_fn, params0_M, x, y, lr, step_counts,
                                   test_x, test_y, mesh) for x, y in sets])
    for j, steps in enumerate(step_counts):
      cells.append(Cell(f'{lr:g}', steps, accs_SxCxM[:, j].ravel()))
  if distilled_lrs is not None:
    accs = [evaluate.evaluate_set(apply_fn, params0_M, x[None], y[None],
                                  distilled_lrs, test_x, test_y, mesh)
            for x, y in sets]
    cells.append(Cell('distilled', len(distilled_lrs), np.concatenate(accs)))
  return cells


def _minibatch_grid(apply_fn, params0_M, sets, lrs, passes_list, test_x,
                    test_y, distilled_lrs, mesh, minibatches) -> list[Cell]:
  as_steps = lambda a: a.reshape(minibatches, -1, *a.shape[1:])
  schedules = [(f'{lr:g}', p, np.full(minibatches * p, lr, np.float32))
               for lr in lrs for p in passes_list]
  if distilled_lrs is not None:
    schedules.append(('distilled', len(distilled_lrs) // minibatches,
                      np.asarray(distilled_lrs, np.float32)))
  cells = []
  for name, passes, lrs_T in schedules:
    accs = [evaluate.evaluate_set(apply_fn, params0_M, as_steps(x),
                                  as_steps(y), lrs_T, test_x, test_y, mesh)
            for x, y in sets]
    cells.append(Cell(name, passes, np.concatenate(accs)))
  return cells


def best(cells: Sequence[Cell]) -> Cell:
  """The cell with the highest mean accuracy."""
  return max(cells, key=lambda c: float(np.mean(c.accs)))


def knn_grid(sets: Sequence[baselines.RealSet], test_x: np.ndarray,
             test_y: np.ndarray, ks: Sequence[int] = (1, 3),
             metrics: Sequence[str] = ('l1', 'l2')) -> list[dict]:
  """KNN accuracy of every (k, metric), mean ± std over the reference sets."""
  rows = []
  for k in ks:
    for metric in metrics:
      accs = [baselines.knn_accuracy(x, y, test_x, test_y, k, metric)
              for x, y in sets]
      rows.append({'k': k, 'metric': metric, **evaluate.summarize(accs)})
  return rows


def select_sets(apply_fn: distill.ApplyFn, params0_M: distill.Params,
                candidates: Sequence[baselines.RealSet], cell: Cell,
                score_x: np.ndarray, score_y: np.ndarray, num_selected: int,
                distilled_lrs: Optional[np.ndarray] = None,
                mesh: Optional[Mesh] = None,
                minibatches: int = 0) -> list[baselines.RealSet]:
  """The 'optimized real' baseline: the candidates that score best.

  Each candidate trains the selection models `params0_M` with the setting of
  `cell` (the best one found for random real sets) and is scored by their
  mean accuracy on (score_x, score_y), real training images. minibatches:
  as in `cnn_grid`.
  """
  scores = []
  for x, y in candidates:
    if minibatches:
      distilled = cell.lr == 'distilled'
      (scored,) = _minibatch_grid(
          apply_fn, params0_M, [(x, y)], [] if distilled else [float(cell.lr)],
          [cell.steps], score_x, score_y, distilled_lrs if distilled else None,
          mesh, minibatches)
      accs = scored.accs
    elif cell.lr == 'distilled':
      accs = evaluate.evaluate_set(apply_fn, params0_M, x[None], y[None],
                                   distilled_lrs, score_x, score_y, mesh)
    else:
      accs = evaluate.evaluate_fixed_lr(apply_fn, params0_M, x, y,
                                        float(cell.lr), [cell.steps], score_x,
                                        score_y, mesh)
    scores.append(float(np.mean(accs)))
  order = np.argsort(scores)[::-1][:num_selected]
  return [candidates[i] for i in order]
