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
