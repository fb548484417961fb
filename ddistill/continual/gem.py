"""GEM's gradient projection (Lopez-Paz and Ranzato, 2017).

Given the gradient g of the current batch and the gradients G (one row per
earlier task) of the loss on each task's episodic memory, GEM uses the
gradient g~ closest to g with G g~ >= 0, so that no memory loss increases
(to first order). It solves the dual, a QP with one variable per task:

  min_v  1/2 vᵀ (G Gᵀ) v + (G g)ᵀ v   s.t.  v >= γ,     g~ = Gᵀ v + g,

where γ >= 0 (the paper's margin) biases the update towards the memories.
quadprog solves it.
"""

import numpy as np
import quadprog


def project(g_P: np.ndarray, mem_grads_KxP: np.ndarray, margin: float = 0.0,
            eps: float = 1e-3) -> np.ndarray:
  """g itself if it agrees with every memory gradient, else its projection.

  eps is added to the diagonal of G Gᵀ, which may be singular (quadprog needs
  it positive definite).
  """
  g = np.asarray(g_P, np.float64)
  mem = np.asarray(mem_grads_KxP, np.float64)
  if len(mem) == 0 or np.all(mem @ g >= 0):
    return g_P
  k = len(mem)
  gram_KxK = mem @ mem.T
  gram_KxK = 0.5 * (gram_KxK + gram_KxK.T) + eps * np.eye(k)
  # quadprog: min 1/2 xᵀ G x - aᵀ x  s.t.  Cᵀ x >= b.
  v = quadprog.solve_qp(gram_KxK, -(mem @ g), np.eye(k),
                        np.full(k, margin))[0]
  return (mem.T @ v + g).astype(np.asarray(g_P).dtype)
