"""Evaluation protocols against independent references (Python loops, scikit-learn, aligniform.metrics)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

from aligniform import metrics
from aligniform.augment import build_augmentation, build_eval_transform
from aligniform.data import dataset_info, load_dataset
from aligniform.evaluate import (
    EVALUATION_PROTOCOLS,
    LinearProbeConfig,
    embed_view_pairs,
    evaluate_encoder,
    extract_features,
    fit_linear_probe,
    knn_accuracy,
    knn_predict,
    linear_probe_accuracy,
    linear_probe_on_augmented_images,
    raw_pixel_baselines,
)


@pytest.fixture(autouse=True)
def _one_thread():
    # The CI machine's 2 cores are shared; two torch threads there run these small ops ~8x slower than one.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class TinyEncoder(nn.Module):
    """Stand-in for aligniform.models.Encoder: conv-BN-ReLU "backbone", unit-norm "output"."""

    layer_names = ("backbone", "output")
    default_eval_layer = "backbone"

    def __init__(self, dim=8, in_channels=1, width=6):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.AdaptiveAvgPool2d(2)
        )
        self.head = nn.Linear(width * 4, dim)

    def forward_features(self, x, layers):
        backbone = self.backbone(x).flatten(1)
        values = {"backbone": backbone, "output": F.normalize(self.head(backbone), dim=1)}
        unknown = [name for name in layers if name not in values]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown}; valid layers: {self.layer_names}")
        return {name: values[name] for name in layers}

    def forward(self, x):
        return self.forward_features(x, ["output"])["output"]


@pytest.fixture(scope="module")
def digits():
    info = dataset_info("digits")
    return {
        "train": load_dataset("digits", split="train"),
        "test": load_dataset("digits", split="test"),
        "eval_transform": build_eval_transform(8, info.mean, info.std, resize=8),
        "augmentation": build_augmentation("digits", 8, info.mean, info.std),
    }


# ---------------------------------------------------------------- k-NN


def knn_reference(train_z, train_labels, test_z, k):
    """Python loops: cosine similarity, majority vote, ties to the larger summed similarity, then the smaller label."""
    train_z, test_z = np.asarray(train_z, np.float64), np.asarray(test_z, np.float64)
    predictions, vote_ties = [], 0
    for query in test_z:
        sims = [float(np.dot(query, row) / (np.linalg.norm(query) * np.linalg.norm(row))) for row in train_z]
        nearest = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
        votes, summed = {}, {}
        for i in nearest:
            label = int(train_labels[i])
            votes[label] = votes.get(label, 0) + 1
            summed[label] = summed.get(label, 0.0) + sims[i]
        top = max(votes.values())
        tied = [label for label in votes if votes[label] == top]
        vote_ties += len(tied) > 1
        predictions.append(min(tied, key=lambda label: (-summed[label], label)))
    return np.array(predictions), vote_ties


@pytest.mark.parametrize("k", [1, 4, 6])
def test_knn_matches_python_loop_reference_including_tie_breaks(k):
    rng = np.random.default_rng(k)
    train_z, test_z = rng.normal(size=(60, 5)), rng.normal(size=(40, 5))
    train_labels = rng.integers(0, 3, 60)
    expected, vote_ties = knn_reference(train_z, train_labels, test_z, k)
    if k > 1:
        assert vote_ties > 0  # the tie-break is actually exercised
    predicted = knn_predict(torch.from_numpy(train_z), torch.from_numpy(train_labels), torch.from_numpy(test_z), k)
    np.testing.assert_array_equal(predicted.numpy(), expected)
    test_labels = rng.integers(0, 3, 40)
    assert knn_accuracy(train_z, train_labels, test_z, test_labels, k) == pytest.approx(
        np.mean(expected == test_labels)
    )


def test_knn_matches_sklearn_cosine_without_ties():
    # Two classes and odd k: a vote can never tie, so sklearn's plain majority vote must agree exactly.
    z, labels = make_blobs(n_samples=400, n_features=6, centers=2, cluster_std=4.0, random_state=0)
    train_z, train_labels, test_z, test_labels = z[:300], labels[:300], z[300:], labels[300:]
    sklearn = KNeighborsClassifier(n_neighbors=5, metric="cosine", algorithm="brute").fit(train_z, train_labels)
    ours = knn_predict(train_z, train_labels, test_z, k=5).numpy()
    np.testing.assert_array_equal(ours, sklearn.predict(test_z))
    assert knn_accuracy(train_z, train_labels, test_z, test_labels, k=5) == pytest.approx(
        sklearn.score(test_z, test_labels)
    )


def test_knn_chunking_and_row_scale_do_not_change_predictions():
    generator = torch.Generator().manual_seed(0)
    train_z, test_z = torch.randn(200, 16, generator=generator), torch.randn(123, 16, generator=generator)
    train_labels = torch.randint(0, 7, (200,), generator=generator)
    whole = knn_predict(train_z, train_labels, test_z, k=5, chunk_size=10_000)
    for chunk_size in (1, 7, 64):
        assert torch.equal(knn_predict(train_z, train_labels, test_z, k=5, chunk_size=chunk_size), whole)
    # Cosine similarity: rescaling rows changes nothing.
    scales = torch.rand(123, 1, generator=generator) + 0.5
    assert torch.equal(knn_predict(train_z * 3, train_labels, test_z * scales, k=5), whole)


def test_knn_validates_k_and_ignores_unlabelled_rows():
    train_z, train_labels = torch.randn(10, 3), torch.tensor([0, 1] * 4 + [-1, -1])
    test_z, test_labels = torch.randn(4, 3), torch.tensor([0, 1, 0, -1])
    for bad_k in (0, -1, 2.5, True, 9):  # 9 > the 8 labelled training rows
        with pytest.raises(ValueError, match="k"):
            knn_accuracy(train_z, train_labels, test_z, test_labels, k=bad_k)
    with pytest.raises(ValueError, match="chunk_size"):
        knn_accuracy(train_z, train_labels, test_z, test_labels, chunk_size=0)
    with pytest.raises(ValueError, match="feature width"):
        knn_accuracy(train_z, train_labels, torch.randn(4, 5), test_labels)
    expected = knn_accuracy(train_z[:8], train_labels[:8], test_z[:3], test_labels[:3], k=8)
    assert knn_accuracy(train_z, train_labels, test_z, test_labels, k=8) == expected


# ---------------------------------------------------------------- linear probe

FAST = LinearProbeConfig(epochs=20, milestones=(12, 16))


def sphere_clusters(n, dim, classes, noise, seed):
    """Unit-norm features around random class directions, like an encoder's output."""
    generator = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(classes, dim, generator=generator), dim=1)
    labels = torch.randint(0, classes, (n,), generator=generator)
    z = F.normalize(centres[labels] + noise * torch.randn(n, dim, generator=generator), dim=1)
    return z, labels


def test_linear_probe_separates_clusters_and_is_deterministic():
    z, labels = sphere_clusters(600, 16, 4, noise=0.1, seed=1)
    rng_before = torch.get_rng_state()
    accuracy = linear_probe_accuracy(z[:400], labels[:400], z[400:], labels[400:])  # the paper's 100 epochs
    assert accuracy == 1.0
    assert torch.equal(torch.get_rng_state(), rng_before)  # own generator: the global RNG is untouched
    first, again = fit_linear_probe(z, labels, FAST), fit_linear_probe(z, labels, FAST)
    assert torch.equal(first.weight, again.weight) and first.loss_per_epoch == again.loss_per_epoch
    other_seed = fit_linear_probe(z, labels, LinearProbeConfig(epochs=20, milestones=(12, 16), seed=1))
    assert not torch.equal(first.weight, other_seed.weight)


def test_linear_probe_matches_sklearn_logistic_regression_on_blobs():
    # Overlapping blobs: neither classifier is perfect, both should find about the same boundary.
    z, labels = make_blobs(n_samples=2000, n_features=8, centers=5, cluster_std=5.0, random_state=0)
    train_z, train_labels, test_z, test_labels = z[:1500], labels[:1500], z[1500:], labels[1500:]
    sklearn = LogisticRegression(max_iter=2000).fit(train_z, train_labels).score(test_z, test_labels)
    ours = linear_probe_accuracy(train_z, train_labels, test_z, test_labels)  # the paper's 100 epochs
    assert 0.5 < sklearn < 0.95
    assert ours == pytest.approx(sklearn, abs=0.05)


def test_linear_probe_applies_the_paper_lr_schedule():
    z, labels = torch.randn(20, 3), torch.arange(20) % 2
    paper = fit_linear_probe(z, labels, LinearProbeConfig(batch_size=20))
    expected = [1e-3] * 60 + [2e-4] * 20 + [4e-5] * 20
    assert paper.lr_per_epoch == pytest.approx(expected, rel=1e-9)
    short = fit_linear_probe(z, labels, LinearProbeConfig.short())
    assert short.lr_per_epoch == pytest.approx([1e-3] * 18 + [2e-4] * 6 + [4e-5] * 6, rel=1e-9)
    custom = fit_linear_probe(z, labels, LinearProbeConfig(epochs=5, lr=0.1, milestones=(2,), gamma=0.5))
    assert custom.lr_per_epoch == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05])


def test_linear_probe_config_defaults_short_schedule_and_validation():
    paper = LinearProbeConfig()
    assert (paper.epochs, paper.lr, paper.betas, paper.batch_size) == (100, 1e-3, (0.5, 0.999), 128)
    assert (paper.milestones, paper.gamma, paper.weight_decay) == ((60, 80), 0.2, 0.0)
    assert LinearProbeConfig.short().milestones == (18, 24)
    assert LinearProbeConfig(milestones=[3, 5]).milestones == (3, 5)  # lists (YAML) are accepted
    for bad in (
        dict(epochs=0),
        dict(lr=-1),
        dict(batch_size=1.5),
        dict(milestones=(80, 60)),
        dict(betas=(0.5,)),
        dict(gamma=0),
        dict(weight_decay=-1),
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LinearProbeConfig(**bad)


def test_linear_probe_ignores_unlabelled_rows():
    z, labels = make_blobs(n_samples=300, n_features=4, centers=3, cluster_std=2.0, random_state=2)
    z, labels = torch.from_numpy(z).float(), torch.from_numpy(labels)
    noisy_labels = labels.clone()
    noisy_labels[::5] = -1
    keep = noisy_labels >= 0
    with_unlabelled = linear_probe_accuracy(z, noisy_labels, z, noisy_labels, FAST)
    assert with_unlabelled == linear_probe_accuracy(z[keep], labels[keep], z[keep], labels[keep], FAST)


# ---------------------------------------------------------------- feature extraction


def test_extract_features_restores_mode_has_no_grad_and_batches_equal_one_pass():
    encoder = TinyEncoder().train()
    encoder.head.eval()  # a mixed state must survive too
    images = torch.randint(0, 256, (37, 1, 8, 8), dtype=torch.uint8)
    transform = build_eval_transform(8, mean=[0.3], std=[0.4], resize=8)
    batched = extract_features(encoder, images, transform, ["backbone", "output"], batch_size=5)
    whole = extract_features(encoder, images, transform, ["backbone", "output"], batch_size=1000)
    assert encoder.training and encoder.backbone.training and not encoder.head.training
    assert list(batched) == ["backbone", "output"]
    for name in batched:
        assert batched[name].dtype == torch.float32 and batched[name].device.type == "cpu"
        assert not batched[name].requires_grad
        # Eval mode: BatchNorm uses running statistics, so the batch split cannot matter.
        torch.testing.assert_close(batched[name], whole[name])
    assert batched["output"].shape == (37, 8)
    assert torch.allclose(batched["output"].norm(dim=1), torch.ones(37))


def test_extract_features_argument_errors_and_plain_modules():
    encoder = TinyEncoder()
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(encoder, images, None, batch_size=0)
    with pytest.raises(ValueError, match="unknown layer"):
        extract_features(encoder, images, None, ["fc9"])
    with pytest.raises(ValueError, match="images"):
        extract_features(encoder, images[0], None)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    out = extract_features(plain, images, None)["output"]
    torch.testing.assert_close(out, plain(images.float() / 255))
    with pytest.raises(ValueError, match="forward_features"):
        extract_features(plain, images, None, ["backbone"])


def test_embed_view_pairs_is_seeded_and_restores_mode_and_global_rng(digits):
    from aligniform.evaluate import seeded_global_rng

    encoder = TinyEncoder().train()
    encoder.head.eval()
    images, augmentation = digits["test"].images[:50], digits["augmentation"]
    torch.manual_seed(7)
    x, y = embed_view_pairs(encoder, images, augmentation, seed=3, layer="backbone", batch_size=16)
    after = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(after, torch.rand(3))  # the caller's random stream is untouched
    assert encoder.training and encoder.backbone.training and not encoder.head.training
    # The same draws as two whole-split passes under the seeded global RNG.
    with seeded_global_rng(3):
        first = extract_features(encoder, images, augmentation, ["backbone"], 16)["backbone"]
        second = extract_features(encoder, images, augmentation, ["backbone"], 16)["backbone"]
    assert torch.equal(x, first) and torch.equal(y, second) and not torch.equal(x, y)
    x2, y2 = embed_view_pairs(encoder, images, augmentation, seed=3, layer="backbone", batch_size=16, repeats=2)
    assert x2.shape == (100, x.shape[1]) and torch.equal(x2[:50], x) and torch.equal(y2[:50], y)
    assert not torch.equal(x2[:50], x2[50:])
    with pytest.raises(ValueError, match="`repeats` must be a positive integer"):
        embed_view_pairs(encoder, images, augmentation, seed=0, repeats=0)


# ---------------------------------------------------------------- evaluate_encoder and baselines


def test_evaluate_encoder_on_digits_matches_metrics_on_the_same_features(digits):
    torch.manual_seed(0)
    encoder = TinyEncoder().train()
    train, test = digits["train"], digits["test"]
    rng_before = torch.get_rng_state()
    results = evaluate_encoder(
        encoder,
        train,
        test,
        eval_transform=digits["eval_transform"],
        augmentation=digits["augmentation"],
        probe_config=LinearProbeConfig(epochs=5, milestones=(3, 4)),
    )
    assert encoder.training and torch.equal(torch.get_rng_state(), rng_before)
    assert set(results) == {
        "linear_acc",
        "knn_acc",
        "mean_classifier_acc",
        "knn_acc_output",
        "alignment",
        "uniformity",
        "tolerance",
        "effective_rank",
    }
    assert all(isinstance(value, float) and math.isfinite(value) for value in results.values())
    for key in ("linear_acc", "knn_acc", "mean_classifier_acc", "knn_acc_output"):
        assert 0.1 < results[key] <= 1.0  # better than chance even for a random encoder
    assert 0 <= results["alignment"] <= 4 and -4 <= results["uniformity"] <= 0
    assert -1 <= results["tolerance"] <= 1 and 1 <= results["effective_rank"] <= 8

    test_feats = extract_features(encoder, test.images, digits["eval_transform"], ["backbone", "output"])
    train_feats = extract_features(encoder, train.images, digits["eval_transform"], ["backbone", "output"])
    output = test_feats["output"]
    assert results["uniformity"] == pytest.approx(metrics.uniformity(output, t=2), rel=1e-6)
    assert results["tolerance"] == pytest.approx(metrics.tolerance(output, test.labels), rel=1e-6)
    assert results["effective_rank"] == pytest.approx(metrics.effective_rank(output), rel=1e-6)
    backbone_knn = knn_accuracy(train_feats["backbone"], train.labels, test_feats["backbone"], test.labels)
    assert results["knn_acc"] == backbone_knn
    assert results["knn_acc_output"] == knn_accuracy(train_feats["output"], train.labels, output, test.labels)
    assert results["mean_classifier_acc"] == metrics.mean_classifier_accuracy(
        train_feats["backbone"], train.labels, test_feats["backbone"], test.labels, normalize=True
    )
    # Augmentations are seeded: evaluating twice gives the same alignment.
    again = evaluate_encoder(
        encoder,
        train,
        test,
        protocols="knn",
        layer="output",
        max_pairs=20_000,
        eval_transform=digits["eval_transform"],
        augmentation=digits["augmentation"],
    )
    assert again["alignment"] == results["alignment"]
    assert set(again) == {"knn_acc", "knn_acc_output", "alignment", "uniformity", "tolerance", "effective_rank"}
    assert again["knn_acc"] == again["knn_acc_output"] == results["knn_acc_output"]
    assert again["uniformity"] == pytest.approx(results["uniformity"], abs=0.05)  # sampled pairs


def test_evaluate_encoder_rejects_unknown_protocols_and_drops_unlabelled_training_images(digits):
    encoder = TinyEncoder()
    common = dict(eval_transform=digits["eval_transform"], augmentation=digits["augmentation"])
    with pytest.raises(ValueError, match="chosen from linear, knn, mean") as error:
        evaluate_encoder(encoder, digits["train"], digits["test"], protocols=("knn", "svm"), **common)
    assert "svm" in str(error.value) and EVALUATION_PROTOCOLS == ("linear", "knn", "mean")
    metrics_only = evaluate_encoder(encoder, digits["train"], digits["test"], protocols=(), **common)
    assert set(metrics_only) == {"knn_acc_output", "alignment", "uniformity", "tolerance", "effective_rank"}
    train = digits["train"].subset(range(300))
    partly_unlabelled = train.subset(range(300))
    partly_unlabelled.labels[200:] = -1
    subset = evaluate_encoder(encoder, train.subset(range(200)), digits["test"], protocols=("knn", "mean"), **common)
    masked = evaluate_encoder(encoder, partly_unlabelled, digits["test"], protocols=("knn", "mean"), **common)
    assert masked == subset


def test_paper_probe_on_augmented_images_is_seeded_and_leaves_global_rng_alone(digits):
    torch.manual_seed(0)
    encoder = TinyEncoder()
    train, test = digits["train"].subset(range(256)), digits["test"]
    config = LinearProbeConfig(epochs=2, milestones=(1,), batch_size=64)
    rng_before = torch.get_rng_state()
    args = (encoder, "backbone", train, test, digits["augmentation"], digits["eval_transform"], config)
    first = linear_probe_on_augmented_images(*args)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert first == linear_probe_on_augmented_images(*args)
    assert 0.1 < first <= 1.0


def test_raw_pixel_baselines_on_digits():
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    results = raw_pixel_baselines(train, test)
    assert results["linear_acc"] > 0.85
    assert results["knn_acc"] > 0.9
    # Independent check of the k-NN number with scikit-learn on the same [0, 1] pixels.
    train_x, test_x = train.images.flatten(1).numpy() / 255.0, test.images.flatten(1).numpy() / 255.0
    sklearn = KNeighborsClassifier(5, metric="cosine", algorithm="brute").fit(train_x, train.labels.numpy())
    assert results["knn_acc"] == pytest.approx(sklearn.score(test_x, test.labels.numpy()), abs=0.01)
