"""GradCache (Gao et al. 2021): a contrastive loss over a batch whose activations do not fit in memory.

The loss of a contrastive objective couples every sample of the batch, so it
cannot be split into per-chunk losses; its dependence on the encoder, however,
goes only through the embeddings. GradCache therefore works in three stages:

1. embed the whole batch chunk by chunk without a graph (activations of one
   chunk at a time), remembering each chunk's random-number state;
2. compute the loss on the full batch of embeddings (gathered across
   processes by the loss function itself, as in plain training) and its
   gradient with respect to the embeddings;
3. re-embed chunk by chunk, with the remembered random state so each chunk's
   embedding is exactly the one of stage 1, and backpropagate the cached
   embedding gradient of that chunk (``embedding.backward(grad_chunk)``).

By the chain rule the parameter gradient is the plain full-batch step's, as
long as each chunk's embedding depends only on that chunk: true for encoders
without BatchNorm and for BatchNorm in eval mode. BatchNorm in training mode
normalises each chunk with the chunk's own statistics, so the result is the
exact gradient of a different model: the one whose BatchNorm statistics are
per chunk of ``chunk_size`` rows (as if each chunk sat on its own GPU without
SyncBatchNorm), not the plain step's full-batch statistics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from .._validation import check_positive_int

__all__ = ["grad_cache_backward", "grad_cache_pairs_backward"]


def grad_cache_backward(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    chunk_size: int,
    module: nn.Module | None = None,
) -> torch.Tensor:
    """Accumulate ``d loss_fn(encoder(inputs)) / d parameters`` while encoding ``chunk_size`` rows at a time.

    Gradients are ACCUMULATED into the parameters' ``.grad`` (and into those of
    any parameter ``loss_fn`` uses, e.g. a learnable temperature), exactly as
    ``loss_fn(encoder(inputs)).backward()`` would, so zero them before as usual.

    The random state (CPU, and every initialised CUDA device) is saved before
    each chunk's first, graph-free encoding and restored for its second one, so
    dropout or any other random layer draws the same numbers twice; at the end
    the random state is left as it was after ``loss_fn``, as if the encoder had
    run once.

    Args:
        encoder: maps ``(c, ...)`` inputs to ``(c, ...)`` embeddings, differentiably
            (a module, or a function around one: autocast, normalisation, ...).
        inputs: ``(n, ...)`` inputs, split along dim 0 into chunks of ``chunk_size``.
        loss_fn: maps the ``(n, ...)`` embeddings to a scalar loss. Under
            ``torchrun`` it gathers the global batch itself (e.g. with
            :func:`aligniform.distributed.gather_pairs`), exactly as plain training
            does; the gather's backward makes each rank's embedding gradient the
            full-batch one for its rows.
        chunk_size: rows per encoder call; the encoder's activations are those of
            one chunk at a time.
        module: the encoder's module when ``encoder`` is a function around it (it
            defaults to ``encoder`` when that is a module). Its buffers (BatchNorm
            running statistics) are restored after the graph-free pass, so they
            are updated once per chunk, by the pass with gradient; under
            DistributedDataParallel gradient synchronisation is skipped for all
            chunks but the last (one all-reduce per step, as in plain training).

    Returns:
        The loss, detached.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> encoder = nn.Linear(4, 3)
        >>> inputs = torch.randn(10, 4)
        >>> def loss_fn(z):
        ...     return torch.logsumexp(z @ z.T, dim=1).mean()   # couples every row with every other
        >>> loss = grad_cache_backward(encoder, inputs, loss_fn, chunk_size=3)
        >>> cached = encoder.weight.grad.clone()
        >>> encoder.weight.grad = None
        >>> loss_fn(encoder(inputs)).backward()
        >>> torch.allclose(cached, encoder.weight.grad, atol=1e-6)
        True
    """
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if module is None and isinstance(encoder, nn.Module):
        module = encoder
    chunks = inputs.split(chunk_size)
    buffers = _snapshot_buffers(module)
    states = []
    with torch.no_grad():
        pieces = []
        for chunk in chunks:
            states.append(_capture_rng())
            pieces.append(encoder(chunk))
    _restore_buffers(module, buffers)
    embeddings = torch.cat(pieces).detach().requires_grad_(True)
    del pieces
    loss = loss_fn(embeddings)
    loss.backward()
    if embeddings.grad is None:
        raise ValueError("loss_fn does not depend on the embeddings: nothing to backpropagate")
    gradients = embeddings.grad.split(chunk_size)
    after_loss = _capture_rng()
    for index, (chunk, gradient, state) in enumerate(zip(chunks, gradients, states, strict=True)):
        _restore_rng(state)
        last = index == len(chunks) - 1
        with contextlib.nullcontext() if last else _no_sync(module):
            encoder(chunk).backward(gradient)
    _restore_rng(after_loss)
    return loss.detach()


def grad_cache_pairs_backward(
    encoder: Callable[[torch.Tensor], torch.Tensor],
    view1: torch.Tensor,
    view2: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    chunk_images: int,
    module: nn.Module | None = None,
) -> torch.Tensor:
    """:func:`grad_cache_backward` for two views of each sample, both views of a chunk in ONE encoder pass.

    A chunk holds both views of ``chunk_images // 2`` samples (at least one), encoded
    together as ``encoder(cat([view1_chunk, view2_chunk]))``: the plain two-view
    step's single pass over both views, so BatchNorm in training mode sees both
    views of the chunk's samples, as it sees both views of the batch there.

    Args:
        encoder: maps ``(c, ...)`` images to ``(c, d)`` embeddings.
        view1: ``(n, ...)`` first views.
        view2: ``(n, ...)`` second views (row i pairs with ``view1[i]``).
        loss_fn: maps the ``(n, d)`` embeddings ``x, y`` of both views to a scalar loss.
        chunk_images: images per encoder pass (>= 2).
        module: as in :func:`grad_cache_backward`.

    Returns:
        The loss, detached (the parameter gradients are accumulated).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> encoder = nn.Linear(4, 3)
        >>> view1, view2 = torch.randn(2, 6, 4)
        >>> def loss_fn(x, y):
        ...     return torch.logsumexp(x @ y.T, dim=1).mean() - (x * y).sum(1).mean()
        >>> loss = grad_cache_pairs_backward(encoder, view1, view2, loss_fn, chunk_images=4)
        >>> torch.allclose(loss, loss_fn(encoder(view1), encoder(view2)))
        True
    """
    chunk_images = check_positive_int(chunk_images, "chunk_images")
    if chunk_images < 2:
        raise ValueError(f"chunk_images must be >= 2 (both views of a sample go in one pass), got {chunk_images}")
    if view1.shape != view2.shape:
        raise ValueError(f"view1 and view2 must have the same shape, got {tuple(view1.shape)} and {tuple(view2.shape)}")
    if module is None and isinstance(encoder, nn.Module):
        module = encoder

    def encode_pairs(pairs: torch.Tensor) -> torch.Tensor:  # (c, 2, ...) -> (c, 2, d)
        x, y = encoder(pairs.transpose(0, 1).flatten(0, 1)).chunk(2)
        return torch.stack([x, y], dim=1)

    return grad_cache_backward(
        encode_pairs,
        torch.stack([view1, view2], dim=1),
        lambda pairs: loss_fn(pairs[:, 0], pairs[:, 1]),
        chunk_images // 2,
        module=module,
    )


def _no_sync(module: nn.Module | None) -> contextlib.AbstractContextManager:
    if isinstance(module, nn.parallel.DistributedDataParallel):
        return module.no_sync()
    return contextlib.nullcontext()


def _snapshot_buffers(module: nn.Module | None) -> list[torch.Tensor]:
    return [] if module is None else [buffer.detach().clone() for buffer in module.buffers()]


@torch.no_grad()
def _restore_buffers(module: nn.Module | None, saved: list[torch.Tensor]) -> None:
    if module is None:
        return
    for buffer, value in zip(module.buffers(), saved, strict=True):
        buffer.copy_(value)


def _capture_rng() -> tuple[torch.Tensor, list[torch.Tensor]]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return torch.get_rng_state(), cuda


def _restore_rng(state: tuple[torch.Tensor, list[torch.Tensor]]) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda:
        torch.cuda.set_rng_state_all(cuda)
