"""MoCo's key encoder: EMA of parameters only, its own BatchNorm statistics, shuffle-BN in one and two processes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aligniform.config import TrainConfig
from aligniform.distributed import GlobalBatchNorm, convert_to_global_batchnorm, init_distributed
from aligniform.train import Trainer
from aligniform.train.moco import MomentumEncoder, shuffle_bn_forward
from tests.support.distributed import launch, rows_of


class WithIdentity(nn.Module):
    """BatchNorm'd features next to the input itself: the second half shows which input row an output row is."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x):
        return torch.cat([self.norm(x), x], dim=1)


def small_encoder():
    torch.manual_seed(0)
    return nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def ema_steps(query, key, steps, momentum):
    """Train ``query`` a few SGD steps, run ``key`` on its own inputs and update it; return what went in."""
    optimizer = torch.optim.SGD(query.parameters(), lr=0.5)
    expected = [p.detach().clone() for p in query.parameters()]
    query_inputs, key_inputs = [], []
    for step in range(steps):
        generator = torch.Generator().manual_seed(step)
        x, k = torch.randn(16, 4, generator=generator) * 2 + 1, torch.randn(16, 4, generator=generator) - 3
        query_inputs.append(x)
        key_inputs.append(k)
        loss = query(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        key(k)
        key.update(query)
        expected = [momentum * e + (1 - momentum) * q.detach() for e, q in zip(expected, query.parameters())]
    return expected, query_inputs, key_inputs


def running_mean_by_hand(inputs, bn_momentum=0.1):
    mean = torch.zeros(inputs[0].shape[1])
    for batch in inputs:
        mean = (1 - bn_momentum) * mean + bn_momentum * batch.mean(0)
    return mean


def test_update_is_an_ema_of_the_parameters_and_keeps_the_key_encoders_own_statistics():
    query = small_encoder()
    key = MomentumEncoder(query, momentum=0.9)
    expected, query_inputs, key_inputs = ema_steps(query, key, steps=5, momentum=0.9)
    for got, want in zip(key.encoder.parameters(), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    # The first BatchNorm sees the raw inputs: its running mean is a hand-computable EMA of the batch means.
    torch.testing.assert_close(key.encoder[0].running_mean, running_mean_by_hand(key_inputs), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(query[0].running_mean, running_mean_by_hand(query_inputs), rtol=1e-5, atol=1e-6)
    assert (key.encoder[0].running_mean - query[0].running_mean).abs().min() > 1  # inputs centred at -3 vs +1
    assert not torch.allclose(key.encoder[2].running_var, query[2].running_var)
    assert int(key.encoder[0].num_batches_tracked) == 5


def test_key_encoder_runs_in_train_mode_without_gradient():
    query = small_encoder().eval()
    key = MomentumEncoder(query, momentum=0.99)
    assert key.training and all(module.training for module in key.encoder.modules())
    assert not any(p.requires_grad for p in key.encoder.parameters())
    keys = key(torch.randn(8, 4))
    assert not keys.requires_grad
    # Train mode: the key batch's own statistics, not the (initial) running ones.
    x = torch.randn(8, 4) * 5 + 2
    assert not torch.allclose(key(x), query(x), atol=1e-3)


def test_synchronised_batchnorm_becomes_per_process_in_the_key_encoder():
    query = convert_to_global_batchnorm(small_encoder())
    assert any(isinstance(m, GlobalBatchNorm) for m in query.modules())
    key = MomentumEncoder(query, momentum=0.99)
    assert not any(isinstance(m, (GlobalBatchNorm, nn.SyncBatchNorm)) for m in key.encoder.modules())
    assert key.encoder.state_dict().keys() == query.state_dict().keys()
    x = torch.randn(8, 4)
    torch.testing.assert_close(key(x), small_encoder()(x))


def test_bad_bn_groups_are_refused():
    with pytest.raises(ValueError, match="bn_groups"):
        MomentumEncoder(small_encoder(), 0.99, bn_groups=0)
    with pytest.raises(ValueError, match="groups"):
        shuffle_bn_forward(small_encoder(), torch.randn(4, 4), groups=1.5)


# ---------------------------------------------------------------------- shuffle-BN in one process


def test_one_group_in_one_process_is_the_plain_forward_and_draws_nothing():
    encoder, x = small_encoder(), torch.randn(12, 4)
    state = torch.get_rng_state()
    torch.testing.assert_close(shuffle_bn_forward(encoder, x), encoder(x), rtol=0, atol=0)
    assert torch.equal(torch.get_rng_state(), state)


def test_without_batch_statistics_nothing_is_shuffled():
    x = torch.randn(12, 4)
    for encoder in (nn.Linear(4, 3), small_encoder().eval()):
        state = torch.get_rng_state()
        torch.testing.assert_close(shuffle_bn_forward(encoder, x, groups=3), encoder(x), rtol=0, atol=0)
        assert torch.equal(torch.get_rng_state(), state)


def test_groups_in_one_process_equal_per_group_forwards_and_the_permutation_is_undone():
    encoder, x, groups = WithIdentity(), torch.randn(24, 3) * 3 + 1, 4
    out = shuffle_bn_forward(encoder, x, groups=groups, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out[:, 3:], x)  # every output row is its own input's row again
    permutation = torch.randperm(24, generator=torch.Generator().manual_seed(3))
    by_hand = torch.cat([encoder(part) for part in x[permutation].tensor_split(groups)])[permutation.argsort()]
    torch.testing.assert_close(out, by_hand, rtol=0, atol=0)
    # Each group is normalised with its own statistics: zero mean per group, not the batch's statistics.
    for group in permutation.tensor_split(groups):
        torch.testing.assert_close(out[group, :3].mean(0), torch.zeros(3), rtol=0, atol=1e-5)
    assert not torch.allclose(out[:, :3], F.batch_norm(x, None, None, training=True), atol=1e-3)
    assert int(encoder.norm.num_batches_tracked) == 2 * groups  # by hand, then by the function: once per group


def test_groups_use_the_global_generator_by_default():
    encoder, x = WithIdentity(), torch.randn(16, 3)
    torch.manual_seed(11)
    first = shuffle_bn_forward(encoder, x, groups=2)
    torch.manual_seed(11)
    torch.testing.assert_close(shuffle_bn_forward(encoder, x, groups=2), first, rtol=0, atol=0)


def test_trainer_step_keeps_the_key_encoders_statistics_and_an_ema(tmp_path):
    config = TrainConfig(
        dataset="digits",
        epochs=1,
        batch_size=32,
        dim=8,
        out=str(tmp_path),
        progress=False,
        moco=True,
        queue_size=64,
        moco_momentum=0.5,
        moco_bn_groups=4,
        objective="contrastive(tau=0.2)",
        linear_probe="none",
    )
    trainer = Trainer(config)
    trainer.network.train()
    expected = [p.detach().clone() for p in trainer.model.parameters()]
    images = trainer.train_images[:32].to(trainer.device)
    for step in range(2):
        trainer._train_step(images, 1, step + 1)
        expected = [0.5 * e + 0.5 * q.detach() for e, q in zip(expected, trainer.model.parameters())]
    for got, want in zip(trainer.key_encoder.encoder.parameters(), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    model_stats = {k: v for k, v in trainer.model.state_dict().items() if "running_mean" in k}
    key_stats = trainer.key_encoder.encoder.state_dict()
    assert model_stats and all(not torch.allclose(key_stats[k], v) for k, v in model_stats.items())
    tracked = [v for k, v in key_stats.items() if k.endswith("num_batches_tracked")]
    assert all(int(v) == 2 * 4 for v in tracked)  # two steps, four BatchNorm groups each
    assert int(trainer.queue.pointer) == (2 * 32) % 64


# ---------------------------------------------------------------------- shuffle-BN across two processes

GLOBAL_ROWS = 16


def global_inputs():
    return torch.randn(GLOBAL_ROWS, 3, generator=torch.Generator().manual_seed(5)) * 2 + 1


def _shuffle_worker(rank, rows_per_rank, groups, seed):
    init_distributed("cpu")
    x = global_inputs()[rows_of(rank, rows_per_rank)]
    torch.manual_seed(seed)  # every rank draws a permutation; rank 0's is the one used
    plain = shuffle_bn_forward(WithIdentity(), x, groups=groups)
    # The key encoder of a --sync-bn model: its BatchNorm must be per process, or shuffling would change nothing.
    key = MomentumEncoder(convert_to_global_batchnorm(WithIdentity()), momentum=0.9, bn_groups=groups)
    torch.manual_seed(seed)
    return plain, key(x)


def one_process_reference(rows_per_rank, groups, seed):
    """The 2-process computation done in one process: rank r encodes its share of the permuted global batch."""
    x = global_inputs()
    torch.manual_seed(seed)
    permutation = torch.randperm(GLOBAL_ROWS)
    encoder = WithIdentity()
    shares = [permutation[rows_of(rank, rows_per_rank)] for rank in range(len(rows_per_rank))]
    outputs = torch.cat([torch.cat([encoder(x[part]) for part in share.tensor_split(groups)]) for share in shares])
    return outputs[permutation.argsort()]


@pytest.mark.slow
@pytest.mark.parametrize(("rows_per_rank", "groups"), [((8, 8), 1), ((8, 8), 2), ((6, 10), 1)])
def test_two_processes_shuffle_across_ranks_like_the_one_process_computation(tmp_path, rows_per_rank, groups):
    results = launch(_shuffle_worker, tmp_path, rows_per_rank, groups, 7)
    reference = one_process_reference(rows_per_rank, groups, 7)
    for rank, (plain, key) in results.items():
        rows = rows_of(rank, rows_per_rank)
        assert torch.equal(plain[:, 3:], global_inputs()[rows])  # unshuffled: each rank gets its own rows back
        torch.testing.assert_close(plain, reference[rows], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(key, reference[rows], rtol=1e-6, atol=1e-6)
    if rows_per_rank == (8, 8):
        # Equal shares: the same as the one-process form with one virtual group per rank's group.
        torch.manual_seed(7)
        single = shuffle_bn_forward(WithIdentity(), global_inputs(), groups=2 * groups)
        torch.testing.assert_close(torch.cat([results[0][0], results[1][0]]), single, rtol=1e-6, atol=1e-6)
