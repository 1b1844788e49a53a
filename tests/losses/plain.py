"""The losses' plain forms, as references for the tiled engine.

Two kinds, both independent of the package's code:

* loops: the papers' formulas as Python loops over float64 numpy, one anchor at
  a time, with its candidate list written out (MoCo, NT-Xent, and every loss
  with a queue, which ``tests.support.reference`` does not cover);
* matrices: the usual dense PyTorch forms (the full similarity matrix, then
  ``F.cross_entropy``), as other libraries write them.
"""

import math
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F


def _np(a):
    return np.asarray(a.detach().cpu().double(), dtype=np.float64)


def exact_kept(alpha, m):
    """ceil(alpha * m), alpha read as the decimal it prints as, in integers; at least 1."""
    fraction = Fraction(str(alpha))
    return max(1, -((-fraction.numerator * m) // fraction.denominator))


def _hardest(negatives, alpha):
    """The kept negatives: the exact_kept(alpha, M) largest, plus ties at the threshold."""
    if alpha is None:
        return negatives
    threshold = sorted(negatives, reverse=True)[exact_kept(alpha, len(negatives)) - 1]
    return [s for s in negatives if s >= threshold]


def _anchors(x, y, queue, symmetric, batch_negatives):
    """Yield (positive similarity, [negative similarities]) for every anchor, as the docs define them."""
    x, y = _np(x), _np(y)
    extra = [] if queue is None else list(_np(queue))
    for a, b in [(x, y), (y, x)] if symmetric else [(x, y)]:
        for i in range(len(a)):
            negatives = [float(a[i] @ b[j]) for j in range(len(b)) if j != i] if batch_negatives else []
            negatives += [float(a[i] @ q) for q in extra]
            yield float(a[i] @ b[i]), negatives


def infonce(x, y, tau, queue=None, symmetric=True, batch_negatives=True, alpha=None):
    """Mean over anchors of -log e^{s+/tau} / (e^{s+/tau} + Σ_kept e^{s-/tau})."""
    terms = []
    for positive, negatives in _anchors(x, y, queue, symmetric, batch_negatives):
        kept = _hardest(negatives, alpha)
        top = max([positive, *kept]) / tau
        denominator = math.exp(positive / tau - top) + sum(math.exp(s / tau - top) for s in kept)
        terms.append(-(positive / tau - top - math.log(denominator)))
    return sum(terms) / len(terms)


def moco(q, k, queue, tau, alpha=None):
    """MoCo (He et al. 2020), as Wang & Isola's moco_align_uniform: query i against [its own key, queue]."""
    return infonce(q, k, tau, queue, symmetric=False, batch_negatives=False, alpha=alpha)


def simple(x, y, lam, queue=None, symmetric=True, batch_negatives=True, hard_alpha=None):
    terms = [
        -positive + lam * sum(_hardest(negatives, hard_alpha))
        for positive, negatives in _anchors(x, y, queue, symmetric, batch_negatives)
    ]
    return sum(terms) / len(terms)


def asymptotic(x, y, tau, queue=None, symmetric=True, batch_negatives=True):
    """-(1/tau) mean s+ + mean over anchors of log mean_neg exp(s-/tau)."""
    alignment, uniformity = [], []
    for positive, negatives in _anchors(x, y, queue, symmetric, batch_negatives):
        alignment.append(-positive / tau)
        top = max(negatives) / tau
        uniformity.append(top + math.log(sum(math.exp(s / tau - top) for s in negatives) / len(negatives)))
    return sum(alignment) / len(alignment) + sum(uniformity) / len(uniformity)


def nt_xent(x, y, tau):
    """SimCLR: z = [x; y]; anchor a's positive is its other view, its denominator all 2N - 1 other views."""
    z = np.concatenate([_np(x), _np(y)])
    n = len(x)
    terms = []
    for a in range(2 * n):
        partner = (a + n) % (2 * n)
        logits = [float(z[a] @ z[b]) / tau for b in range(2 * n) if b != a]
        top = max(logits)
        terms.append(top + math.log(sum(math.exp(v - top) for v in logits)) - float(z[a] @ z[partner]) / tau)
    return sum(terms) / len(terms)


# ---------------------------------------------------------------- dense matrix forms


def matrix_contrastive(x, y, tau):
    """The plain symmetric form: x @ y.T, then cross-entropy in both directions."""
    logits = x @ y.T / tau
    targets = torch.arange(x.shape[0], device=x.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def matrix_moco(q, k, queue, tau):
    """MoCo as its authors (and solo-learn's moco_loss_func) write it: logits [q·k, q·queue] / tau, label 0."""
    positive = (q * k).sum(1, keepdim=True)
    logits = torch.cat([positive, q @ queue.T], 1) / tau
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def matrix_nt_xent(x, y, tau):
    """NT-Xent as lightly's NTXentLoss writes it (no memory bank)."""
    n = x.shape[0]
    diagonal = torch.eye(n, dtype=torch.bool, device=x.device)
    logits_00 = (x @ x.T / tau)[~diagonal].view(n, -1)
    logits_11 = (y @ y.T / tau)[~diagonal].view(n, -1)
    logits_01, logits_10 = x @ y.T / tau, y @ x.T / tau
    logits = torch.cat([torch.cat([logits_01, logits_00], 1), torch.cat([logits_10, logits_11], 1)])
    return F.cross_entropy(logits, torch.arange(n, device=x.device).repeat(2))


def matrix_hard_contrastive(x, y, tau, alpha, queue=None):
    """Symmetric in-batch hard contrastive, dense: each row keeps its positive and exact_kept(alpha, M) negatives."""
    terms = []
    for a, b in ((x, y), (y, x)):
        candidates = b if queue is None else torch.cat([b, queue])
        logits = a @ candidates.T / tau
        n, m = logits.shape
        positive = torch.zeros(n, m, dtype=torch.bool)
        positive[:, :n] = torch.eye(n, dtype=torch.bool)
        negatives = logits.detach().masked_fill(positive, -math.inf)
        threshold = negatives.topk(exact_kept(alpha, m - 1), dim=1).values[:, -1:]
        keep = (negatives >= threshold) | positive
        terms.append(torch.logsumexp(logits.masked_fill(~keep, -math.inf), 1) - logits.diagonal())
    return torch.cat(terms).mean()
