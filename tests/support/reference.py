"""Independent, slow, obviously-correct references: the papers' formulas as Python loops over float64 numpy."""

import math

import numpy as np


def _np(a):
    return np.asarray(a.detach().cpu().double() if hasattr(a, "detach") else a, dtype=np.float64)


def align(x, y, alpha):
    x, y = _np(x), _np(y)
    return sum(math.sqrt(sum((x[i] - y[i]) ** 2)) ** alpha for i in range(len(x))) / len(x)


def uniform(x, t, queue=None, intra_batch=True):
    x = _np(x)
    terms = []
    if intra_batch:
        for i in range(len(x)):
            for j in range(i + 1, len(x)):
                terms.append(-t * sum((x[i] - x[j]) ** 2))
    if queue is not None:
        for i in range(len(x)):
            for q in _np(queue):
                terms.append(-t * sum((x[i] - q) ** 2))
    # log-mean-exp with the max factored out, so the reference itself never underflows
    top = max(terms)
    return top + math.log(sum(math.exp(v - top) for v in terms) / len(terms))


def _infonce_terms(anchors, candidates, extra, tau, alpha=1.0):
    out = []
    for i, a in enumerate(anchors):
        positive = float(a @ candidates[i])
        negatives = [float(a @ c) for j, c in enumerate(candidates) if j != i]
        negatives += [float(a @ q) for q in extra]
        ranked = sorted(negatives, reverse=True)
        threshold = ranked[max(1, math.ceil(alpha * len(negatives))) - 1]
        kept = [s for s in negatives if s >= threshold]
        denominator = math.exp(positive / tau) + sum(math.exp(s / tau) for s in kept)
        out.append(-math.log(math.exp(positive / tau) / denominator))
    return out


def contrastive(x, y, tau, queue=None):
    return hard_contrastive(x, y, tau, 1.0, queue)


def hard_contrastive(x, y, tau, alpha, queue=None):
    x, y = _np(x), _np(y)
    extra = [] if queue is None else list(_np(queue))
    terms = _infonce_terms(x, y, extra, tau, alpha) + _infonce_terms(y, x, extra, tau, alpha)
    return sum(terms) / len(terms)


def simple(x, y, lam, hard_alpha=None):
    x, y = _np(x), _np(y)
    terms = []
    for anchors, candidates in ((x, y), (y, x)):
        for i, a in enumerate(anchors):
            negatives = [float(a @ c) for j, c in enumerate(candidates) if j != i]
            if hard_alpha is not None:
                ranked = sorted(negatives, reverse=True)
                threshold = ranked[max(1, math.ceil(hard_alpha * len(negatives))) - 1]
                negatives = [s for s in negatives if s >= threshold]
            terms.append(-float(a @ candidates[i]) + lam * sum(negatives))
    return sum(terms) / len(terms)


def asymptotic(x, y, tau):
    x, y = _np(x), _np(y)
    n = len(x)
    first = -sum(float(x[i] @ y[i]) for i in range(n)) / n / tau
    second = []
    for anchors, others in ((x, y), (y, x)):
        for i in range(n):
            second.append(
                math.log(sum(math.exp(float(anchors[i] @ others[j]) / tau) for j in range(n) if j != i) / (n - 1))
            )
    return first + sum(second) / len(second)


def tolerance(z, labels):
    z = _np(z)
    total, count = 0.0, 0
    for i in range(len(z)):
        for j in range(len(z)):
            if i != j and labels[i] == labels[j]:
                total += float(z[i] @ z[j])
                count += 1
    return total / count


def mean_classifier(train_z, train_labels, test_z, test_labels):
    train_z, test_z = _np(train_z), _np(test_z)
    classes = sorted(set(int(c) for c in train_labels))
    means = {c: np.mean([train_z[i] for i in range(len(train_z)) if train_labels[i] == c], axis=0) for c in classes}
    correct = 0
    for z, label in zip(test_z, test_labels):
        scores = {c: float(means[c] @ z) for c in classes}
        correct += max(scores, key=scores.get) == label
    return correct / len(test_z)


def effective_rank(z):
    singular = np.linalg.svd(_np(z), compute_uv=False)
    p = singular / singular.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def _log_sum_exp(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _views_and_members(x, y, queue):
    """z = [x; y] (the anchors) and the candidate rows z + queue, as float64 arrays."""
    z = list(_np(x)) + list(_np(y))
    return z, z + ([] if queue is None else list(_np(queue)))


def supervised_contrastive(x, y, labels, tau, queue=None, queue_labels=None):
    """Khosla et al. (2020), eq. 2 (L_out): a loop over anchors, positives and candidates."""
    z, members = _views_and_members(x, y, queue)
    labels = [int(v) for v in labels]
    member_labels = labels + labels + ([] if queue_labels is None else [int(v) for v in queue_labels])
    total = 0.0
    for a in range(len(z)):
        others = [b for b in range(len(members)) if b != a]
        log_denominator = _log_sum_exp([float(z[a] @ members[b]) / tau for b in others])
        positives = [b for b in others if member_labels[b] == member_labels[a]]
        total += -sum(float(z[a] @ members[p]) / tau - log_denominator for p in positives) / len(positives)
    return total / len(z)


def _other_view(a, n):
    return a + n if a < n else a - n


def decoupled(x, y, tau, weighted=False, sigma=0.5, queue=None):
    """Yeh et al. (2022): -w·s_pos/tau + log Σ_negatives exp(s/tau), negatives = the 2N - 2 other views (+ queue)."""
    z, members = _views_and_members(x, y, queue)
    n = len(z) // 2
    similarity = [float(z[i] @ z[i + n]) for i in range(n)]
    weights = [1.0] * n
    if weighted:
        normaliser = sum(math.exp(s / sigma) for s in similarity)
        weights = [2 - n * math.exp(s / sigma) / normaliser for s in similarity]
    total = 0.0
    for a in range(len(z)):
        negatives = [float(z[a] @ members[b]) / tau for b in range(len(members)) if b not in (a, _other_view(a, n))]
        total += -weights[a % n] * similarity[a % n] / tau + _log_sum_exp(negatives)
    return total / len(z)


def debiased(x, y, tau, tau_plus, beta=0.0, queue=None):
    """Chuang et al. (2020) with Robinson et al.'s (2021) reweighting, as the authors' code writes it (exps)."""
    z, members = _views_and_members(x, y, queue)
    n = len(z) // 2
    total = 0.0
    for a in range(len(z)):
        negatives = [
            math.exp(float(z[a] @ members[b]) / tau) for b in range(len(members)) if b not in (a, _other_view(a, n))
        ]
        m = len(negatives)
        importance = [v**beta for v in negatives]  # exp(beta * s / tau)
        reweighted = sum(w * v for w, v in zip(importance, negatives)) / (sum(importance) / m)
        positive = math.exp(float(z[a] @ z[_other_view(a, n)]) / tau)
        g = max((reweighted - tau_plus * m * positive) / (1 - tau_plus), m * math.exp(-1 / tau))
        total += -math.log(positive / (positive + g))
    return total / len(z)


def sigmoid(x, y, scale, bias):
    """Zhai et al. (2023): -(1/N) Σ_ij log σ(z_ij (scale x_iᵀy_j + bias)), z = +1 on i = j, -1 elsewhere."""
    x, y = _np(x), _np(y)
    total = 0.0
    for i in range(len(x)):
        for j in range(len(y)):
            u = (1 if i == j else -1) * (scale * float(x[i] @ y[j]) + bias)
            total += max(-u, 0.0) + math.log1p(math.exp(-abs(u)))  # -log σ(u), without overflow
    return total / len(x)
