"""The thin CLI layer: analyze and report call the library and print/write what it returns."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aligniform import metrics
from aligniform.cli import main


@pytest.fixture
def pairs_npz(tmp_path):
    generator = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(200, 16, generator=generator), dim=1)
    y = F.normalize(x + 0.2 * torch.randn(200, 16, generator=generator), dim=1)
    labels = np.arange(200) % 4
    path = tmp_path / "pairs.npz"
    np.savez(path, x=x.numpy(), y=y.numpy(), labels=labels)
    return path, x, y, labels


def test_analyze_json_equals_core_metrics(pairs_npz, capsys):
    path, x, y, labels = pairs_npz
    assert main(["analyze", "--npz", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["alignment"] == pytest.approx(metrics.alignment(x, y))
    assert result["uniformity"] == pytest.approx(metrics.uniformity(x))
    assert result["tolerance"] == pytest.approx(metrics.tolerance(x, labels))
    assert result["effective_rank"] == pytest.approx(metrics.effective_rank(x))


def test_analyze_table_and_input_errors(pairs_npz, tmp_path, capsys):
    path = pairs_npz[0]
    assert main(["analyze", "--npz", str(path)]) == 0
    assert "uniformity (t=2)" in capsys.readouterr().out
    assert main(["analyze"]) == 2
    assert "give exactly one input" in capsys.readouterr().err
    np.savez(tmp_path / "raw.npz", x=np.random.default_rng(0).normal(size=(20, 4)))
    assert main(["analyze", "--npz", str(tmp_path / "raw.npz")]) == 2
    assert "--normalize" in capsys.readouterr().err
    assert main(["analyze", "--npz", str(tmp_path / "raw.npz"), "--normalize"]) == 0


def test_report_command_writes_html(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("dataset: digits\nobjective: align(alpha=2) + uniform(t=2)\n")
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "loss": -1.0, "knn_acc": 0.9, "lr": 0.1}) + "\n")
    (run / "results.json").write_text(
        json.dumps(
            {
                "linear_acc": 0.9,
                "knn_acc": 0.8,
                "mean_classifier_acc": 0.7,
                "alignment": 0.5,
                "uniformity": -3.0,
                "tolerance": 0.4,
            }
        )
    )
    out = tmp_path / "report.html"
    assert main(["report", str(run), "-o", str(out)]) == 0
    html = out.read_text()
    assert "data:image/png;base64," in html and "90.0" in html
    assert main(["report", str(tmp_path / "missing"), "-o", str(out)]) == 2


def test_study_names_match_registry_and_study_runs(tmp_path, capsys):
    from aligniform.cli.study import STUDY_NAMES
    from aligniform.studies import STUDIES

    assert sorted(STUDY_NAMES) == sorted(STUDIES)
    assert (
        main(
            [
                "study",
                "latent-classes",
                "--out",
                str(tmp_path),
                "--set",
                "num_classes=4",
                "--set",
                "steps=20",
                "--set",
                "progress=false",
            ]
        )
        == 0
    )
    assert (tmp_path / "latent-classes.json").is_file()
    assert main(["study", "theorem1", "--out", str(tmp_path), "--set", "nosuch=1"]) == 2
    assert "--set expects KEY=VALUE" in capsys.readouterr().err


def test_analyze_figures_for_two_dimensional_features(tmp_path, capsys):
    generator = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(120, 2, generator=generator), dim=1)
    y = F.normalize(x + 0.1 * torch.randn(120, 2, generator=generator), dim=1)
    np.savez(tmp_path / "p.npz", x=x.numpy(), y=y.numpy(), labels=np.arange(120) % 3)
    assert main(["analyze", "--npz", str(tmp_path / "p.npz"), "--figures", str(tmp_path / "fig")]) == 0
    for name in ("alignment_histogram", "hypersphere"):
        assert (tmp_path / "fig" / f"{name}.png").stat().st_size > 5000
        assert "<svg" in (tmp_path / "fig" / f"{name}.svg").read_text()[:2000]


def test_study_set_values_are_typed_and_bad_ones_named(tmp_path, capsys):
    assert main(["study", "theorem1", "--list-options"]) == 0
    assert "negatives = (1, 2, 4" in capsys.readouterr().out
    assert main(["study", "theorem1", "--out", str(tmp_path), "--set", "repeats=lots"]) == 2
    assert "--set repeats must be of type int, got 'lots'" in capsys.readouterr().err
    assert main(["study", "theorem1", "--set", "repeats=2"]) == 2
    assert "study needs --out DIR" in capsys.readouterr().err
