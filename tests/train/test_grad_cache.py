"""GradCache: the full-batch gradient with chunked encoder passes: one process, DDP, MoCo, the trainer."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aligniform import Objective
from aligniform.build import load_training_data
from aligniform.config import ConfigError, TrainConfig
from aligniform.distributed import gather_pairs, init_distributed, wrap_ddp
from aligniform.train import Trainer, load_checkpoint
from aligniform.train.grad_cache import grad_cache_backward, grad_cache_pairs_backward
from aligniform.train.moco import FeatureQueue, MomentumEncoder
from tests.support.distributed import launch, rows_of

OBJECTIVE = "contrastive(tau=0.2) + uniform(t=2)"


class Unit(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return F.normalize(self.body(x), dim=1)


def conv_encoder(batchnorm: bool = False, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, padding=1)]
    layers += [nn.BatchNorm2d(8)] if batchnorm else []
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(dropout), nn.Linear(32, 16)]
    return Unit(nn.Sequential(*layers))


def views(n=20, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 6, 6, generator=generator), torch.randn(n, 3, 6, 6, generator=generator)


def gradients(module):
    return [p.grad.detach().clone() for p in module.parameters()]


def plain_pair_step(encoder, view1, view2, objective):
    encoder.zero_grad()
    loss = objective(*encoder(torch.cat([view1, view2])).chunk(2))
    loss.backward()
    return loss.detach(), gradients(encoder)


def cached_pair_step(encoder, view1, view2, objective, chunk_images):
    encoder.zero_grad()
    loss = grad_cache_pairs_backward(encoder, view1, view2, objective, chunk_images)
    return loss, gradients(encoder)


def assert_all_close(got, want, tol=1e-5):
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=tol, atol=tol)


@pytest.mark.parametrize("chunk_images", [2, 6, 8, 40, 64])
def test_batchnorm_free_encoder_gets_the_full_batch_gradient(chunk_images):
    encoder, objective = conv_encoder(), Objective.parse(OBJECTIVE)
    view1, view2 = views()
    plain_loss, plain = plain_pair_step(encoder, view1, view2, objective)
    cached_loss, cached = cached_pair_step(encoder, view1, view2, objective, chunk_images)
    torch.testing.assert_close(cached_loss, plain_loss)
    assert not cached_loss.requires_grad
    assert_all_close(cached, plain)


def test_batchnorm_in_eval_mode_gets_the_full_batch_gradient_and_keeps_its_statistics():
    encoder, objective = conv_encoder(batchnorm=True).eval(), Objective.parse(OBJECTIVE)
    encoder.body[1].running_mean.normal_()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    view1, view2 = views()
    _, plain = plain_pair_step(encoder, view1, view2, objective)
    _, cached = cached_pair_step(encoder, view1, view2, objective, 8)
    assert_all_close(cached, plain)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_batchnorm_in_train_mode_is_the_exact_gradient_with_per_chunk_statistics():
    objective = Objective.parse(OBJECTIVE)
    view1, view2 = views()
    reference = conv_encoder(batchnorm=True)
    # The model GradCache differentiates: each chunk (both views of 4 samples) normalised on its own.
    pieces = [reference(torch.cat([a, b])).chunk(2) for a, b in zip(view1.split(4), view2.split(4))]
    x, y = torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces])
    reference_loss = objective(x, y)
    reference_loss.backward()
    encoder = conv_encoder(batchnorm=True)
    loss, cached = cached_pair_step(encoder, view1, view2, objective, 8)
    torch.testing.assert_close(loss, reference_loss.detach())
    assert_all_close(cached, gradients(reference))
    # Running statistics: updated once per chunk, by the pass with gradient only (as the reference's).
    assert int(encoder.body[1].num_batches_tracked) == 5
    torch.testing.assert_close(encoder.body[1].running_mean, reference.body[1].running_mean)
    torch.testing.assert_close(encoder.body[1].running_var, reference.body[1].running_var)
    # ... which is not the full batch's statistics of the plain step.
    _, plain = plain_pair_step(conv_encoder(batchnorm=True), view1, view2, objective)
    assert not all(torch.allclose(c, p, atol=1e-5) for c, p in zip(cached, plain))


def test_dropout_draws_the_same_masks_twice_and_the_rng_continues_as_after_one_pass():
    objective = Objective.parse(OBJECTIVE)
    inputs = torch.cat(views())
    reference = conv_encoder(dropout=0.5)
    torch.manual_seed(123)
    embeddings = torch.cat([reference(chunk) for chunk in inputs.split(7)])
    after_reference = torch.get_rng_state()
    loss = objective(*embeddings.chunk(2))
    loss.backward()
    encoder = conv_encoder(dropout=0.5)
    torch.manual_seed(123)
    cached_loss = grad_cache_backward(encoder, inputs, lambda z: objective(*z.chunk(2)), chunk_size=7)
    assert torch.equal(torch.get_rng_state(), after_reference)
    torch.testing.assert_close(cached_loss, loss.detach())
    assert_all_close(gradients(encoder), gradients(reference))


def test_parameters_of_the_loss_get_their_gradient_too():
    encoder = conv_encoder()
    log_scale = nn.Parameter(torch.tensor(2.0))
    view1, view2 = views()

    def loss_fn(x, y):
        logits = x @ y.T * log_scale.exp()
        return F.cross_entropy(logits, torch.arange(len(x)))

    loss_fn(*encoder(torch.cat([view1, view2])).chunk(2)).backward()
    want = log_scale.grad.clone(), gradients(encoder)
    log_scale.grad = None
    encoder.zero_grad()
    grad_cache_pairs_backward(encoder, view1, view2, loss_fn, 10)
    torch.testing.assert_close(log_scale.grad, want[0])
    assert_all_close(gradients(encoder), want[1])


def test_moco_queries_through_grad_cache_with_keys_from_the_momentum_encoder():
    objective = Objective.parse("contrastive(tau=0.2) + uniform(t=2)")
    query = conv_encoder()
    key = MomentumEncoder(conv_encoder(batchnorm=True), momentum=0.99, bn_groups=2)
    queue = FeatureQueue(32, 16, torch.Generator().manual_seed(0)).features
    view1, view2 = views()

    def loss_fn(x):
        torch.manual_seed(9)  # the same key groups in both computations
        return objective(x, key(view2), queue=queue, moco=True)

    loss_fn(query(view1)).backward()
    plain = gradients(query)
    query.zero_grad()
    grad_cache_backward(query, view1, loss_fn, chunk_size=6)
    assert_all_close(gradients(query), plain)
    assert not any(p.grad is not None for p in key.parameters())


def test_bad_arguments_are_refused():
    encoder, (view1, view2) = conv_encoder(), views()
    with pytest.raises(ValueError, match="chunk_size"):
        grad_cache_backward(encoder, view1, lambda z: z.sum(), chunk_size=0)
    with pytest.raises(ValueError, match="chunk_images"):
        grad_cache_pairs_backward(encoder, view1, view2, lambda x, y: (x * y).sum(), 1)
    with pytest.raises(ValueError, match="same shape"):
        grad_cache_pairs_backward(encoder, view1, view2[:3], lambda x, y: (x * y).sum(), 4)
    weight = nn.Parameter(torch.ones(()))
    with pytest.raises(ValueError, match="does not depend on the embeddings"):
        grad_cache_backward(encoder, view1, lambda z: weight * 2, chunk_size=4)
    for value in (1, 0, 2.5):
        with pytest.raises(ConfigError, match="grad_cache"):
            TrainConfig(grad_cache=value)


# ---------------------------------------------------------------------- the trainer


def tiny_config(out, **overrides):
    values = dict(dataset="digits", epochs=1, batch_size=32, dim=8, out=str(out), progress=False, linear_probe="none")
    values.update(overrides, objective=OBJECTIVE)
    return TrainConfig(**values)


def one_trainer_step(config):
    trainer = Trainer(config)
    trainer.network.train()
    torch.manual_seed(4)
    terms = trainer._train_step(trainer.train_images[:32].to(trainer.device), 1, 1)
    return terms, trainer.model.state_dict()


def test_trainer_with_one_chunk_per_batch_steps_like_the_plain_trainer(tmp_path):
    # One chunk holds the batch's both views in the plain step's order: the same BatchNorm batch, the same step.
    plain_terms, plain = one_trainer_step(tiny_config(tmp_path / "plain"))
    cached_terms, cached = one_trainer_step(tiny_config(tmp_path / "cached", grad_cache=64))
    assert cached_terms == pytest.approx(plain_terms, rel=1e-5)
    for key, value in plain.items():
        torch.testing.assert_close(cached[key], value, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize("moco", [False, True])
def test_trainer_trains_with_small_chunks(tmp_path, moco):
    config = tiny_config(tmp_path / "run", grad_cache=8, moco=moco, queue_size=64, moco_bn_groups=2)
    trainer = Trainer(config)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["config"]["grad_cache"] == 8
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    if moco:
        assert int(trainer.queue.pointer) == (len(trainer.data.train) // 32 * 32) % 64


# ---------------------------------------------------------------------- two processes

GLOBAL_PAIRS = 12


def global_views():
    return views(GLOBAL_PAIRS, seed=3)


def _ddp_worker(rank, rows_per_rank, chunk_images):
    context = init_distributed("cpu")
    network = wrap_ddp(conv_encoder(), context)
    objective = Objective.parse(OBJECTIVE)
    view1, view2 = (v[rows_of(rank, rows_per_rank)] for v in global_views())
    loss = grad_cache_pairs_backward(
        network, view1, view2, lambda x, y: objective(*gather_pairs(x, y)), chunk_images, module=network
    )
    return loss, gradients(network.module)


@pytest.mark.slow
@pytest.mark.parametrize(("rows_per_rank", "chunk_images"), [((6, 6), 4), ((6, 6), 12), ((6, 6), 5)])
def test_two_processes_under_ddp_get_the_one_process_full_batch_gradient(tmp_path, rows_per_rank, chunk_images):
    results = launch(_ddp_worker, tmp_path, rows_per_rank, chunk_images)
    encoder, objective = conv_encoder(), Objective.parse(OBJECTIVE)
    plain_loss, plain = plain_pair_step(encoder, *global_views(), objective)
    for loss, grads in results.values():
        torch.testing.assert_close(loss, plain_loss)
        assert_all_close(grads, plain)


@pytest.mark.slow
def test_torchrun_moco_with_grad_cache_and_shuffle_bn(tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "aligniform", "train", "--dataset", "digits", "--batch-size", "64", "--dim", "16", "--epochs", "1",
        "--no-progress", "--linear-probe", "none", "--moco", "--queue-size", "128", "--moco-bn-groups", "2",
        "--grad-cache", "16", "--sync-bn", "--objective", OBJECTIVE, "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["config"]["grad_cache"] == 16 and state["config"]["moco_bn_groups"] == 2
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert (
        math.isfinite(record["loss"])
        and int(state["queue"]["pointer"])
        == (len(load_training_data(TrainConfig(dataset="digits")).train) // 64 * 64) % 128
    )
