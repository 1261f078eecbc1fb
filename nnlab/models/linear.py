"""The baseline: a linear layer. Logistic (binary), softmax (multiclass) or ridge (regression) regression,
depending on the loss it is fitted with (`train.fit_baseline`, full-batch Newton). It reads dense rows
[N, D] or sparse ones (a torch sparse CSR/COO tensor, e.g. the text baseline's TF-IDF features)."""

import torch
from torch import nn
from torch.nn import functional as F


class Linear(nn.Linear):
    """nn.Linear (same weight names and layout) that also multiplies sparse rows: a sparse [N, D] input
    would otherwise have to be densified, which for a TF-IDF vocabulary can be gigabytes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.layout == torch.strided:
            return F.linear(x, self.weight, self.bias)
        return torch.sparse.mm(x, self.weight.t()) + self.bias


def build(n_inputs: int, n_outputs: int) -> nn.Module:
    model = Linear(n_inputs, n_outputs)
    nn.init.zeros_(model.weight)  # the convex fit does not need a random start; zeros make it exact to repeat
    nn.init.zeros_(model.bias)
    return model


# --- the fit --------------------------------------------------------------------------------------------
# Newton's method with a conjugate-gradient step (truncated Newton, as liblinear's solver): the gradient and
# the Hessian's products are written out, so no autograd graph, and each step needs only two matrix-vector
# products of the rows (sparse rows stay sparse). It reaches the minimum to the last digits in about ten steps,
# where L-BFGS needed about a hundred function evaluations with their Python bookkeeping.

GAP_TOL = 1e-9  # stop when the objective is provably this close to its minimum (see fit_convex)
CG_MAX = 200  # conjugate-gradient steps per Newton step at most


class _Objective:
    """mean loss + c/2·||W||² (c = l2/n, the intercept unpenalized) of a linear model on rows x, in float64;
    theta is [K, D + 1], the weights then the intercept. `at` sets the point; then `hessp` multiplies by the
    Hessian there and `diagonal` gives its diagonal (the preconditioner)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, task: str, n_outputs: int, l2: float) -> None:
        self.x, self.task, self.k, self.n = x, task, n_outputs, x.shape[0]
        self.sparse = x.layout != torch.strided
        # x.T once, as rows of its own: a CSR transpose is a CSC, whose products are slow, and a dense product
        # with a transposed view takes twice the time of one with contiguous rows
        self.xt = x.t().to_sparse_csr() if self.sparse else x.t().contiguous()
        self.x_sq = (torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), x.values() ** 2, x.shape,
                                             check_invariants=False).t().to_sparse_csr()  # x's own structure
                     if self.sparse else (x * x).t().contiguous())
        self.c = l2 / self.n
        self.y = (torch.nn.functional.one_hot(y, n_outputs).to(x.dtype) if task == "multiclass"
                  else y.to(x.dtype).reshape(-1, 1))

    def start(self) -> torch.Tensor:
        """Zero weights, the intercept that is best for them (the base rate's logit, the classes' log
        frequencies, the mean): the first Newton step then starts where the data already is."""
        theta = torch.zeros(self.k, self.x.shape[1] + 1, dtype=self.x.dtype, device=self.x.device)
        mean = self.y.mean(0)
        if self.task == "binary":
            theta[:, -1] = torch.logit(mean.clamp(1e-6, 1 - 1e-6))
        elif self.task == "multiclass":
            logs = mean.clamp_min(1e-12).log()
            theta[:, -1] = logs - logs.mean()
        else:
            theta[:, -1] = mean
        return theta

    def _rows(self, theta: torch.Tensor) -> torch.Tensor:
        return self.x @ theta[:, :-1].t() + theta[:, -1]  # [N, K]

    def _back(self, r: torch.Tensor, theta_w: torch.Tensor) -> torch.Tensor:
        """[N, K] per-row terms -> the [K, D + 1] gradient (or Hessian product) they make, with the penalty."""
        return torch.cat([(self.xt @ r).t() + self.c * theta_w, r.sum(0).unsqueeze(1)], dim=1)

    def at(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(objective, gradient) at theta."""
        z, w = self._rows(theta), theta[:, :-1]
        penalty = 0.5 * self.c * w.pow(2).sum()
        if self.task == "multiclass":
            logp = torch.log_softmax(z, dim=1)
            self.p = logp.exp()
            value = -(logp * self.y).sum() / self.n
            r = (self.p - self.y) / self.n
            self.s = self.p * (1 - self.p) / self.n  # the diagonal's curvature, per row and class
        elif self.task == "binary":
            value = (torch.nn.functional.softplus(z) - self.y * z).sum() / self.n
            p = torch.sigmoid(z)
            r = (p - self.y) / self.n
            self.s = p * (1 - p) / self.n
        else:
            value = 0.5 * (z - self.y).pow(2).sum() / self.n
            r = (z - self.y) / self.n
            self.s = torch.full_like(z, 1 / self.n)
        return value + penalty, self._back(r, w)

    def hessp(self, v: torch.Tensor) -> torch.Tensor:
        u = self._rows(v)
        if self.task == "multiclass":
            pu = self.p * u
            t = (pu - self.p * pu.sum(1, keepdim=True)) / self.n
        else:
            t = self.s * u
        return self._back(t, v[:, :-1])

    def diagonal(self) -> torch.Tensor:
        return torch.cat([(self.x_sq @ self.s).t() + self.c, self.s.sum(0).unsqueeze(1)], dim=1)


def _newton_step(objective: _Objective, g: torch.Tensor, g_norm: float) -> torch.Tensor:
    """d with H·d ≈ -g by preconditioned conjugate gradients, to a relative residual that shrinks with the
    gradient (so the steps converge quadratically near the minimum)."""
    m_inv = 1 / objective.diagonal()
    d = torch.zeros_like(g)
    r = -g
    z = m_inv * r
    p = z
    rz = (r * z).sum()
    stop = min(0.5, g_norm ** 0.5) * g_norm
    for _ in range(CG_MAX):
        hp = objective.hessp(p)
        alpha = rz / (p * hp).sum()
        d = d + alpha * p
        r = r - alpha * hp
        if float(r.abs().max()) <= stop:
            break
        z = m_inv * r
        rz_new = (r * z).sum()
        p = z + (rz_new / rz) * p
        rz = rz_new
    return d


def fit_convex(x: torch.Tensor, y: torch.Tensor, task: str, n_outputs: int, l2: float,
               max_iter: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight [K, D], bias [K]) minimising the baseline's objective (see `_Objective`) on float64 rows x:
    Newton steps with a backtracking (Armijo) line search, from the best intercept for zero weights. It stops
    when ||g||²/(2c) <= GAP_TOL: the penalty makes the objective c-strongly convex in the weights (c = l2/n),
    so that bounds how far above its minimum it is; the intercept's curvature, the rows' mean p(1-p) (1 for
    ridge), is in practice far above c. l2 = 0 stops at a gradient of 1e-10 instead."""
    objective = _Objective(x, y, task, n_outputs, l2)
    theta = objective.start()
    value, g = objective.at(theta)
    for _ in range(max_iter):
        g_norm = float(g.abs().max())
        if not (float(g.pow(2).sum()) / (2 * objective.c) > GAP_TOL if objective.c > 0 else g_norm > 1e-10):
            break  # also at a NaN: the caller reports it as diverged
        d = _newton_step(objective, g, g_norm)
        slope, step = float((g * d).sum()), 1.0
        if not slope < 0:
            break
        while True:
            new_theta = theta + step * d
            new_value, new_g = objective.at(new_theta)
            if float(new_value) <= float(value) + 1e-4 * step * slope:
                break
            step /= 2
            if step < 1e-10:  # no decrease left to find in float64: this is the minimum
                return theta[:, :-1], theta[:, -1]
        theta, value, g = new_theta, new_value, new_g
    return theta[:, :-1], theta[:, -1]
