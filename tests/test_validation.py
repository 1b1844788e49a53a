"""Every bad input named in the docs raises a ValueError naming the argument and the expectation."""

import numpy as np
import pytest
import torch

import aligniform as af
from aligniform import metrics
from tests.support.sphere import positive_pairs

X, Y = positive_pairs(8, 4)
ONE_ROW = X[:1]
NAN = X.clone()
NAN[2, 1] = float("nan")
INF = X.clone()
INF[0, 0] = float("inf")


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: af.align_loss(X[0], Y[0]), r"`x` must be a 2-D \(N, d\) feature matrix"),
        (lambda: af.align_loss(X, Y[:5]), r"`x` and `y` must have the same shape"),
        (lambda: af.align_loss(X, Y.float()), r"same dtype"),
        (lambda: af.align_loss(X.long(), Y.long()), r"floating-point dtype"),
        (lambda: af.uniform_loss(ONE_ROW), r"`x` has 1 row\(s\) but at least 2"),
        (lambda: af.contrastive_loss(ONE_ROW, ONE_ROW), r"at least 2"),
        (lambda: af.uniform_loss(NAN), r"`x` contains NaN or inf"),
        (lambda: af.contrastive_loss(X, INF), r"`y` contains NaN or inf"),
        (lambda: af.align_loss(X, Y, alpha=0), r"`alpha` must be a positive"),
        (lambda: af.align_loss(X, Y, alpha=float("nan")), r"`alpha` must be a positive"),
        (lambda: af.uniform_loss(X, t=-2), r"`t` must be a positive"),
        (lambda: af.contrastive_loss(X, Y, tau=0), r"`tau` must be a positive"),
        (lambda: af.hard_contrastive_loss(X, Y, tau=0.5, alpha=1.5), r"`alpha` must lie in \(0, 1\]"),
        (lambda: af.hard_contrastive_loss(X, Y, tau=0.5, alpha=0), r"`alpha` must be a positive"),
        (lambda: af.simple_loss(X, Y, lam=-1), r"`lam` must be a positive"),
        (lambda: af.simple_loss(X, Y, lam=1, hard_alpha=2), r"`hard_alpha` must lie in \(0, 1\]"),
        (lambda: af.uniform_loss(X, queue=X[:, :3]), r"`queue` must have the same feature width.*\(K, 4\)"),
        (lambda: af.contrastive_loss(X, Y, queue=X[:, :2]), r"`queue` must have the same feature width"),
        (lambda: af.uniform_loss(X, intra_batch=False), r"needs a queue"),
        (lambda: af.uniform_loss(2 * X), r"`x` must be L2-normalised.*turn on `normalize`"),
        (lambda: af.contrastive_loss(X, 1.01 * Y), r"`y` must be L2-normalised"),
        (lambda: af.align_loss(X, Y, alpha="two"), r"`alpha` must be a positive number, got 'two'"),
        (lambda: metrics.uniformity(ONE_ROW), r"at least 2"),
        (lambda: metrics.tolerance(X, [0, 1]), r"`labels` must be a 1-D vector with one label per row \(8\)"),
        (lambda: metrics.tolerance(X, np.full(8, 0.5)), r"integer class labels"),
        (lambda: metrics.alignment(X.numpy(), Y.numpy()[:, :2]), r"same shape"),
        (lambda: metrics.mean_classifier_accuracy(X, [0] * 8, X[:, :2], [0] * 8), r"same feature width"),
        (lambda: metrics.uniformity(X, max_pairs=-5), r"`max_pairs` must be a positive"),
        (lambda: metrics.alignment("abc", Y), r"`x` must be a torch.Tensor or numpy array|2-D"),
        (lambda: metrics.effective_rank(np.zeros((3, 3))), r"all zeros"),
    ],
)
def test_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_tolerance_is_dtype_aware():
    x = torch.nn.functional.normalize(torch.randn(16, 64), dim=1).bfloat16()
    assert torch.isfinite(af.uniform_loss(x))  # bf16 rounding of unit vectors is not an error


def test_checks_can_be_switched_off():
    with af.input_checks(False):
        af.uniform_loss(X * 1.5)  # no error: value checks skipped
    with pytest.raises(ValueError):
        af.uniform_loss(X * 1.5)


def test_queue_without_pairs_allows_single_row():
    queue = positive_pairs(5, 4, seed=2)[0]
    assert torch.isfinite(af.uniform_loss(ONE_ROW, queue=queue, intra_batch=False))
    assert torch.isfinite(af.contrastive_loss(ONE_ROW, Y[:1], queue=queue))


def test_keyword_arguments_still_disable_autocast():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = af.contrastive_loss(x=X.float(), y=Y.float(), tau=0.05)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(af.contrastive_loss(X, Y, 0.05).item(), rel=1e-5)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: af.uniform_loss(X, t=True), r"`t` must be a positive number, got True"),
        (lambda: af.uniform_loss(X, t="2"), r"`t` must be a positive number, got '2'"),
        (lambda: af.align_loss(X, Y, alpha=True), r"`alpha` must be a positive number, got True"),
        (lambda: af.contrastive_loss(X, Y, tau=np.bool_(True)), r"`tau` must be a positive number"),
        (lambda: metrics.uniformity(X, t="2"), r"`t` must be a positive number, got '2'"),
        (lambda: metrics.alignment(X, Y, alpha=False), r"`alpha` must be a positive number, got False"),
        (lambda: af.simple_loss(X, Y, lam="0.1"), r"`lam` must be a positive number"),
        (lambda: af.hard_contrastive_loss(X, Y, tau=0.5, alpha=True), r"`alpha` must be a positive number"),
    ],
)
def test_bools_and_strings_are_not_numbers(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("value", [2, 2.0, np.float32(2), np.int64(2), np.array(2.0), torch.tensor(2.0)])
def test_numpy_scalars_and_one_element_tensors_are_numbers(value):
    from aligniform._validation import check_positive

    assert check_positive(value, "t") == 2.0
    assert metrics.uniformity(X, t=value) == pytest.approx(metrics.uniformity(X, t=2.0))


def test_a_learnable_scale_is_checked_but_keeps_its_gradient():
    from aligniform._validation import check_positive

    t = torch.tensor(2.0, requires_grad=True)
    assert check_positive(t, "t") == 2.0 and t.requires_grad
    af.uniform_loss(X, t=t).backward()
    assert t.grad is not None and torch.isfinite(t.grad)


@pytest.mark.parametrize(
    "value,ok",
    [
        (3, True),
        (np.int32(3), True),
        (torch.tensor(3), True),
        (np.array(3), True),
        (True, False),
        (3.0, False),
        ("3", False),
        (torch.tensor(3.0), False),
        (0, False),
        (-2, False),
        (None, False),
    ],
)
def test_check_positive_int_takes_integers_only(value, ok):
    from aligniform._validation import check_positive_int

    if ok:
        assert check_positive_int(value, "k") == 3
    else:
        with pytest.raises(ValueError, match="`k` must be a positive integer"):
            check_positive_int(value, "k")


def test_labels_that_are_not_numbers_are_a_value_error():
    with pytest.raises(ValueError, match="`labels` must hold numbers, got an array of dtype <U"):
        metrics.tolerance(X, np.array(["a", "b"] * 4))


def test_check_output_path_refuses_what_would_fail_after_the_work(tmp_path):
    from aligniform._validation import check_output_path

    (tmp_path / "file.txt").write_text("x")
    assert check_output_path(tmp_path / "new" / "r.json", "--json") == tmp_path / "new" / "r.json"
    assert check_output_path(tmp_path / "new" / "figs", "--figures", folder=True) == tmp_path / "new" / "figs"
    assert check_output_path(tmp_path, "--out", folder=True) == tmp_path
    for path, folder, message in [
        (tmp_path, False, r"-o .* is a folder, not a file"),
        (tmp_path / "file.txt", True, r"-o .*file\.txt is a file, not a folder"),
        (tmp_path / "file.txt" / "r.json", False, r"lies under .*file\.txt, which is a file"),
        (tmp_path / "file.txt" / "a" / "b", True, r"lies under .*file\.txt, which is a file"),
        ("", False, r"-o must be a non-empty path"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_output_path(path, "-o", folder=folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # nothing was created


def test_check_output_path_refuses_a_folder_it_may_not_write_in(tmp_path, monkeypatch):
    import os

    from aligniform._validation import check_output_path

    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ValueError, match=r"cannot write in .* \(permission denied or a read-only file system\)"):
        check_output_path(tmp_path / "r.html", "-o")


@pytest.mark.parametrize(
    "call",
    [
        lambda: af.align_loss(X.to("meta"), Y.to("meta")),
        lambda: af.uniform_loss(X.to("meta")),
        lambda: af.supervised_contrastive_loss(X, Y, torch.arange(8, device="meta")),
    ],
    ids=["align", "uniform", "supcon-labels"],
)
def test_meta_tensors_are_a_type_error_naming_the_argument(call):
    with pytest.raises(TypeError, match="is a meta tensor .* pass a tensor on the CPU or a GPU"):
        call()


@pytest.mark.parametrize("block_rows", [0, -3, 2.5, True])
def test_uniform_block_rows_must_be_a_positive_integer(block_rows):
    with pytest.raises(af.errors.OptionError, match="`block_rows` must be a positive integer or None"):
        af.uniform_loss(X, block_rows=block_rows)


def test_supcon_accepts_lists_like_the_other_losses():
    labels = [0, 1, 0, 1, 2, 2, 3, 3]
    from_lists = af.supervised_contrastive_loss(X.tolist(), Y.tolist(), labels)
    assert torch.equal(from_lists, af.supervised_contrastive_loss(X.double(), Y.double(), torch.tensor(labels)))
