"""Section 3.3: distilling least-squares linear regression for one GD step.

Real data: an N x D matrix d and N x 1 targets t; loss l(d, t, θ) =
||dθ - t||² / (2N) for a D x 1 weight θ. The distilled set is M points
(d̃, t̃) and one learned learning rate η̃; one GD step from θ0 gives

  θ1 = (I - (η̃/M) d̃ᵀd̃) θ0 + (η̃/M) d̃ᵀt̃,

which reaches the global minimum for every θ0 only if I - (η̃/M) d̃ᵀd̃ = 0,
so only if M >= D. Here the distilled set is learned with the same recipe as
for networks (random θ0 each iteration, Adam on the meta-gradient) and the
closed-form condition is checked on what was learned.

`run_linear(config, workdir)` does so for every M of the config and writes
linear.json and linear.md / linear.csv: for each M, the excess loss over
the global minimum after one step from held-out inits, and ||I - (η/M) dᵀd||_F.
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ddistill import config_checks
from ddistill import workdir as workdir_lib


@dataclasses.dataclass(frozen=True)
class Problem:
  d_NxD: np.ndarray
  t_Nx1: np.ndarray
  theta_star_Dx1: np.ndarray  # A global minimum (least squares).


def make_problem(key: jax.Array, num_points: int, dim: int,
                 noise: float = 0.1) -> Problem:
  """Random regression data with full-rank features and noisy targets."""
  k_d, k_w, k_n = jax.random.split(key, 3)
  d = jax.random.normal(k_d, (num_points, dim))
  t = d @ jax.random.normal(k_w, (dim, 1)) + noise * jax.random.normal(
      k_n, (num_points, 1))
  theta_star = jnp.linalg.lstsq(d, t)[0]
  return Problem(*(np.asarray(a, np.float64) for a in (d, t, theta_star)))


def loss(d_NxD: jax.Array, t_Nx1: jax.Array, theta_Dx1: jax.Array) -> jax.Array:
  return jnp.sum(jnp.square(d_NxD @ theta_Dx1 - t_Nx1)) / (2 * len(d_NxD))


def one_step(distilled: dict, theta0_Dx1: jax.Array) -> jax.Array:
  """θ1 = θ0 - η̃ ∇l(d̃, t̃, θ0), with η̃ = softplus(raw_lr) > 0."""
  lr = jax.nn.softplus(distilled['raw_lr'])
  grad = jax.grad(loss, argnums=2)(distilled['d'], distilled['t'], theta0_Dx1)
  return theta0_Dx1 - lr * grad


def condition_residual(distilled: dict) -> float:
  """||I - (η̃/M) d̃ᵀd̃||_F: zero iff one step reaches θ* from every θ0."""
  d = np.asarray(distilled['d'], np.float64)
  lr = float(jax.nn.softplus(distilled['raw_lr']))
  m, dim = d.shape
  return float(np.linalg.norm(np.eye(dim) - lr / m * d.T @ d))


def excess_losses(distilled: dict, problem: Problem,
                  theta0_KxDx1: jax.Array) -> np.ndarray:
  """l(θ1) - l(θ*) on the real data, for each init θ0 [K]."""
  d, t = problem.d_NxD, problem.t_Nx1
  best = loss(d, t, problem.theta_star_Dx1)
  after = jax.vmap(lambda th: loss(d, t, one_step(distilled, th)))(
      theta0_KxDx1)
  return np.asarray(after - best)


def distill(key: jax.Array, problem: Problem, num_distilled: int,
            num_iterations: int = 3000, inits_per_iteration: int = 8,
            init_std: float = 1.0, lr: float = 0.01) -> dict:
  """Learns (d̃ [M x D], t̃ [M x 1], η̃) for random θ0 ~ N(0, init_std² I)."""
  dim = problem.d_NxD.shape[1]
  k_d, k_t, k_run = jax.random.split(key, 3)
  distilled = {'d': jax.random.normal(k_d, (num_distilled, dim)),
               't': jax.random.normal(k_t, (num_distilled, 1)),
               'raw_lr': jnp.asarray(0.0)}
  optimizer = optax.adam(optax.cosine_decay_schedule(lr, num_iterations))
  d, t = jnp.asarray(problem.d_NxD), jnp.asarray(problem.t_Nx1)

  def outer_loss(distilled, theta0_KxDx1):
    after = jax.vmap(lambda th: loss(d, t, one_step(distilled, th)))
    return after(theta0_KxDx1).mean()

  def iteration(carry, it):
    distilled, opt_state = carry
    theta0 = init_std * jax.random.normal(jax.random.fold_in(k_run, it),
                                          (inits_per_iteration, dim, 1))
    value, grads = jax.value_and_grad(outer_loss)(distilled, theta0)
    updates, opt_state = optimizer.update(grads, opt_state)
    return (optax.apply_updates(distilled, updates), opt_state), value

  (distilled, _), _ = jax.jit(lambda c: jax.lax.scan(
      iteration, c, jnp.arange(num_iterations)))(
          (distilled, optimizer.init(distilled)))
  return distilled


def run_linear(config: ml_collections.ConfigDict, workdir: str,
               fresh: bool = False) -> str:
  """Learns a distilled set for each M of config.num_distilled, measures it
  on held-out inits, writes the outputs; returns the Markdown table.

  fresh: first delete the outputs already in `workdir`.
  """
  config_checks.validate(config, 'linear')
  workdir_lib.guard(workdir, config, fresh,
                    outputs=('linear.json', 'linear.md', 'linear.csv'))
  k_data, k_distill, k_heldout = jax.random.split(jax.random.key(config.seed),
                                                  3)
  problem = make_problem(k_data, config.num_points, config.dim, config.noise)
  theta0 = jax.random.normal(k_heldout, (config.num_heldout, config.dim, 1))
  rows = []
  for i, m in enumerate(workdir_lib.numbers(config.num_distilled,
                                            'num_distilled', int)):
    distilled = distill(jax.random.fold_in(k_distill, i), problem, m,
                        config.num_iterations, config.inits_per_iteration,
                        1.0, config.lr)
    excess = excess_losses(distilled, problem, theta0)
    rows.append({'M': m, 'D': config.dim,
                 'excess_loss_mean': float(excess.mean()),
                 'excess_loss_max': float(excess.max()),
                 'condition_residual': condition_residual(distilled),
                 'residual_lower_bound': float(np.sqrt(max(config.dim - m,
                                                           0)))})
  workdir_lib.write_json(os.path.join(workdir, 'linear.json'), {
      'rows': rows, 'config': json.loads(config.to_json())})
  md, csv_text = workdir_lib.table(
      ['M', 'D', 'excess loss, mean over held-out θ0', 'max',
       '‖I − (η/M) dᵀd‖_F', 'lower bound √(D − M)'],
      [[r['M'], r['D']] + [f'{r[k]:.3g}' for k in (
          'excess_loss_mean', 'excess_loss_max', 'condition_residual',
          'residual_lower_bound')] for r in rows])
  workdir_lib.write_table(os.path.join(workdir, 'linear'), md, csv_text)
  return md
