"""The reproduction summary: claim rows from the studies' outputs, verdict rules, and the in-place table update."""

import errno
import json
import os
import stat

import pytest

from aligniform.cli import main
from aligniform.studies import summary
from aligniform.studies.correlation import run_correlation_study
from aligniform.studies.summary import BEGIN, END, run_summary_study
from aligniform.studies.temperature import claims, trends

from .test_correlation import RESAMPLES, figure5_rows, seed_rows, write_sweep
from .test_studies import _row


def write(folder, name, values):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(values))
    return folder


def demo(folder, align_uniform=(0.970, 0.971), contrastive=(0.968, 0.967)):
    rows = {
        "raw pixels": {"linear_acc": 0.910, "knn_acc": 0.948},
        "contrastive": dict(zip(("linear_acc", "knn_acc"), contrastive, strict=True)),
        "align_uniform": dict(zip(("linear_acc", "knn_acc"), align_uniform, strict=True)),
    }
    return write(folder, "results.json", {"results": rows, "epochs": 30})


def temperature(folder):
    rows = []
    for tau in (0.07, 0.2, 0.3, 0.5, 0.7, 1.0):
        for seed, e in {0: -0.01, 1: 0.0, 2: 0.01}.items():
            rows.append(_row("contrastive", tau, seed, 3.5 - tau + e, 0.2 + 0.5 * tau + e, 0.95 + e / 10))
            rows.append(_row("hard_contrastive", tau, seed, 3.6 + e, 0.3 + e, 0.95 + e / 10))
    trend = trends(rows, resamples=500)
    options = {"dataset": "mnist5k", "epochs": 10, "seeds": [0, 1, 2]}
    return write(folder, "temperature.json", {"options": options, "rows": rows, "claims": claims(rows, trend)})


def family(folder, nt_small=(0.9685, 0.0007), dcl_small=(0.9715, 0.0007)):
    def entry(objective, batch, tolerance, accuracy, spread):
        return {"objective": objective, "batch_size": batch, "seeds": 2, "tolerance": tolerance,
                "tolerance_std": 0.01, "linear_acc": accuracy, "linear_acc_std": spread, "accuracy": accuracy,
                "accuracy_std": spread}  # fmt: skip

    entries = [
        entry("contrastive", 256, 0.42, 0.9655, 0.002),
        entry("supervised_contrastive", 256, 0.88, 0.978, 0.001),
        entry("nt_xent", 256, 0.41, 0.9635, 0.0064),
        entry("nt_xent", 32, 0.41, *nt_small),
        entry("decoupled", 256, 0.42, 0.966, 0.0057),
        entry("decoupled", 32, 0.42, *dcl_small),
        entry("debiased", 256, 0.51, 0.9565, 0.0064),
    ]
    options = {"dataset": "mnist5k", "epochs": 5, "seeds": [0, 1], "batch_size": 256, "small_batch": 32}
    return write(folder, "family.json", {"options": options, "summary": entries})


def theorem1(folder, shrinks=(True, True)):
    def curve(tau, shrink):
        return {"tau": tau, "gap_shrinks": shrink, "slope": -0.9, "predicted_m_times_gap": 2.0,
                "rows": [{"M": 1, "m_times_gap": 3.0}, {"M": 512, "m_times_gap": 2.1}]}  # fmt: skip

    curves = {f"{tau:g}": curve(tau, shrink) for tau, shrink in zip((0.2, 0.5), shrinks, strict=True)}
    return write(folder, "theorem1.json", {"synthetic": {"curves": curves}})


def latent(folder, holds=True):
    fine, broken = {"binary_loss": 0.5, "sup_bound": 0.6}, {"binary_loss": 0.7, "sup_bound": 0.6}
    first = [fine, fine, fine if holds else broken]
    settings = [{"bound_holds": holds, "records": first}, {"bound_holds": True, "records": [fine] * 3}]
    pooled = {"checkpoints": 6, "median_within_setting_unsup_vs_accuracy": -0.97, "unsup_vs_accuracy": -0.79}
    return write(folder, "latent-classes.json", {"settings": settings, "pooled": pooled})


def figure5(folder):
    write_sweep(folder / "grid", figure5_rows())
    seeds = write_sweep(folder / "seeds", seed_rows())
    run_correlation_study(
        folder / "grid", reuse=True, grid="sweeps/figure5_mnist5k", resamples=RESAMPLES, seeds=str(seeds)
    )
    return folder / "grid"


def by_claim(rows):
    return {row["claim"]: row for row in rows}


def test_every_study_gives_its_rows_with_a_verdict(tmp_path):
    options = dict(
        demo=str(demo(tmp_path / "demo")),
        correlation=(str(figure5(tmp_path / "fig5")),),
        temperature=str(temperature(tmp_path / "temperature")),
        theorem1=str(theorem1(tmp_path / "theorem1")),
        latent_classes=str(latent(tmp_path / "latent")),
        family=str(family(tmp_path / "family")),
        progress=False,
    )
    results = run_summary_study(tmp_path / "out", **options)
    rows = by_claim(results["rows"])
    allowed = {"reproduced", "partly", "not reproduced", "not evaluable"}
    assert all(row["verdict"] in allowed for row in results["rows"])
    assert rows["align + uniform trains encoders as good as contrastive"]["verdict"] == "reproduced"
    assert "97.0 vs 96.8 % linear" in rows["align + uniform trains encoders as good as contrastive"]["here"]
    # Figure 5 rows carry the study's own verdicts: its synthetic grid reproduces the ablation
    for claim in ("alignment alone collapses", "uniformity alone lacks invariance (less aligned, less accurate)"):
        assert rows[claim]["verdict"] == "reproduced" and rows[claim]["here"].startswith("mnist5k: holds")
    assert "lower uniformity ↔ higher accuracy across encoders" in rows
    assert rows["uniformity falls as τ grows (contrastive)"]["verdict"] == "reproduced"
    assert rows["hard contrastive stays more uniform at large τ"]["verdict"] == "reproduced"
    assert rows["L_contrastive − log M → Theorem 1's limit, gap ~ c/M"]["verdict"] == "reproduced"
    assert "within 5–5 %" in rows["L_contrastive − log M → Theorem 1's limit, gap ~ c/M"]["here"]
    assert rows["mean-classifier accuracy follows the unsupervised loss"]["verdict"] == "reproduced"
    # SupCon: 0.46 above with s.e. 0.01: reproduced; NT-Xent improves at batch 32: the DCL premise is absent
    assert rows["SupCon's tolerance is higher than InfoNCE's"]["verdict"] == "reproduced"
    dcl = rows["DCL trains well at small batch where NT-Xent degrades"]
    assert dcl["verdict"] == "not evaluable" and "premise is absent" in dcl["here"]
    assert rows["debiased contrastive beats SimCLR (NT-Xent)"]["verdict"] == "not reproduced"
    table = (tmp_path / "out" / "summary.md").read_text()
    assert table.count("\n| ") == len(results["rows"]) + 1 and "**not reproduced**" in table


def test_verdict_rules_on_the_edges(tmp_path):
    behind = summary.demo_rows(json.loads((demo(tmp_path / "d", (0.960, 0.975)) / "results.json").read_text()))
    assert behind[0]["verdict"] == "partly"  # 0.8 points behind on linear, ahead on 5-NN
    t1 = json.loads((theorem1(tmp_path / "t", (True, False)) / "theorem1.json").read_text())
    assert summary.theorem1_rows(t1)[0]["verdict"] == "partly"
    lc = json.loads((latent(tmp_path / "l", holds=False) / "latent-classes.json").read_text())
    row = summary.latent_classes_rows(lc)[0]
    assert row["verdict"] == "partly" and "held at 5 of 6 checkpoints" in row["here"]
    # NT-Xent loses 3 points at batch 32 (premise present); DCL loses less, by far more than 2 s.e.
    degraded = json.loads((family(tmp_path / "f", (0.9335, 0.001), (0.960, 0.001)) / "family.json").read_text())
    assert (
        by_claim(summary.family_rows(degraded))["DCL trains well at small batch where NT-Xent degrades"]["verdict"]
        == "reproduced"
    )
    assert summary.combine(["not reproduced", "not evaluable"]) == "not reproduced"


def test_update_replaces_only_the_marked_table_and_checks_first(tmp_path, capsys):
    folder = demo(tmp_path / "demo")
    target = tmp_path / "REPRODUCTION.md"
    target.write_text(f"# Reproduction\n\nintro\n\n{BEGIN}\n| old | table |\n{END}\n\n## 1. after\n")
    run_summary_study(tmp_path / "out", demo=str(folder), update=str(target), progress=False)
    text = target.read_text()
    assert text.startswith("# Reproduction\n\nintro\n\n" + BEGIN + "\n| claim | paper | here | verdict |")
    assert text.endswith(END + "\n\n## 1. after\n") and "| old | table |" not in text
    # A file without the markers is refused before anything is written, with one line and exit code 2.
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert main(["study", "summary", "--out", str(tmp_path / "out2"), "--set", f"demo={folder}",
                 "--set", f"update={plain}"]) == 2  # fmt: skip
    error = capsys.readouterr().err
    assert "plain.md needs the summary markers" in error and "Traceback" not in error
    assert plain.read_text() == "no markers\n" and not (tmp_path / "out2").exists()


def test_a_read_only_file_is_not_updated(tmp_path, capsys):
    folder = demo(tmp_path / "demo")
    target = tmp_path / "REPRODUCTION.md"
    text = f"intro\n{BEGIN}\n| old |\n{END}\n"
    target.write_text(text)
    target.chmod(0o444)
    arguments = ["study", "summary", "--out", str(tmp_path / "out"), "--set", f"demo={folder}"]
    assert main([*arguments, "--set", f"update={target}"]) == 2
    error = capsys.readouterr().err
    assert "REPRODUCTION.md is read-only; make it writable (chmod u+w" in error and "Traceback" not in error
    assert target.read_text() == text and not (tmp_path / "out").exists()
    target.chmod(0o644)  # writable again: updated, and its permissions kept
    assert main([*arguments, "--set", f"update={target}"]) == 0
    assert "| old |" not in target.read_text() and stat.S_IMODE(target.stat().st_mode) == 0o644


def test_missing_study_output_is_a_one_line_error(tmp_path, capsys):
    assert main(["study", "summary", "--out", str(tmp_path / "o"), "--set", f"temperature={tmp_path}"]) == 2
    assert f"{tmp_path}/temperature.json does not exist" in capsys.readouterr().err
    write(tmp_path / "old", "family.json", {"options": {}})  # written by something else: no summary
    assert main(["study", "summary", "--out", str(tmp_path / "o"), "--set", f"family={tmp_path / 'old'}"]) == 2
    error = capsys.readouterr().err
    assert "family.json lacks what the summary reads" in error and "Traceback" not in error


def test_undefined_numbers_give_not_evaluable_rows():
    curve = {"tau": 0.5, "gap_shrinks": True, "slope": None, "predicted_m_times_gap": None, "rows": [{"M": 1}]}
    row = summary.theorem1_rows({"synthetic": {"curves": {"0.5": curve}}})[0]
    assert row["verdict"] == "reproduced" and row["here"] == "1 of 1 curves shrink"
    pooled = {"checkpoints": 0, "median_within_setting_unsup_vs_accuracy": None, "unsup_vs_accuracy": None}
    assert summary.latent_classes_rows({"settings": [], "pooled": pooled})[0]["verdict"] == "not evaluable"
    assert summary.by_margin(0.5, None) == "not evaluable" and summary._decided("reproduces", None) == "not evaluable"


def test_the_documented_command_parses():
    from aligniform.studies import SummaryOptions
    from aligniform.studies.options import parse_study_options

    overrides = parse_study_options(SummaryOptions, ["correlation=runs/figure5/mnist5k,runs/figure5/digits",
                                                     "update=REPRODUCTION.md"])  # fmt: skip
    assert overrides == {"correlation": ("runs/figure5/mnist5k", "runs/figure5/digits"), "update": "REPRODUCTION.md"}


# ----------------------------------------------------------------------------- issue 19: the file to update


def _marked(newline="\n"):
    return newline.join(["# Reproduction", "", BEGIN, "| old |", END, "", "after", ""])


def _summary(tmp_path, target, out="out"):
    folder = demo(tmp_path / "demo")
    return main(["study", "summary", "--out", str(tmp_path / out), "--set", f"demo={folder}", "--set",
                 f"update={target}"])  # fmt: skip


def test_a_linked_file_is_updated_through_its_link(tmp_path):
    real = tmp_path / "docs" / "REPRODUCTION.md"
    real.parent.mkdir()
    real.write_text(_marked())
    link = tmp_path / "R.md"
    link.symlink_to(real)
    assert _summary(tmp_path, link) == 0
    assert link.is_symlink() and os.readlink(link) == str(real)  # still a link, to the same file
    assert "| claim | paper | here | verdict |" in real.read_text() and "| old |" not in real.read_text()


def test_a_hard_linked_file_is_updated_under_every_name(tmp_path):
    first = tmp_path / "REPRODUCTION.md"
    first.write_text(_marked())
    second = tmp_path / "copy.md"
    os.link(first, second)
    assert _summary(tmp_path, first) == 0
    assert first.stat().st_ino == second.stat().st_ino and first.stat().st_nlink == 2
    assert second.read_text() == first.read_text() and "| old |" not in second.read_text()


def test_crlf_endings_are_kept(tmp_path):
    target = tmp_path / "REPRODUCTION.md"
    target.write_bytes(_marked("\r\n").encode())
    assert _summary(tmp_path, target) == 0
    data = target.read_bytes()
    assert b"| claim |" in data and data.count(b"\n") == data.count(b"\r\n")
    assert data.startswith(b"# Reproduction\r\n\r\n") and data.endswith(b"\r\n\r\nafter\r\n")


@pytest.mark.parametrize("code", [errno.EPERM, errno.EACCES])
def test_an_immutable_file_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch, code):
    target = tmp_path / "REPRODUCTION.md"
    target.write_text(_marked())
    opened = os.open

    def refuse(path, flags, *args):  # as chattr +i (or +a) makes the kernel answer, even to root
        if os.fspath(path) == str(target) and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return opened(path, flags, *args)

    monkeypatch.setattr("aligniform.studies.update_file.os.open", refuse)
    assert _summary(tmp_path, target) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error and ".tmp" not in error
    assert f"{target} cannot be written" in error and "immutable" in error
    assert target.read_text() == _marked() and not (tmp_path / "out").exists()


def test_a_failed_write_names_the_file_not_a_temporary_one(tmp_path, capsys, monkeypatch):
    target = tmp_path / "REPRODUCTION.md"
    target.write_text(_marked())

    replace = os.replace

    def refuse(source, destination):  # the rename over the file fails (EPERM): named by the file
        if os.fspath(destination) != str(target):
            return replace(source, destination)
        raise PermissionError(errno.EPERM, "Operation not permitted", str(source), None, str(destination))

    monkeypatch.setattr("aligniform._io.os.replace", refuse)
    assert _summary(tmp_path, target) == 2
    error = capsys.readouterr().err.strip()
    assert str(target) in error and ".tmp" not in error and "Traceback" not in error
    assert target.read_text() == _marked() and sorted(p.name for p in tmp_path.iterdir()) == [
        "REPRODUCTION.md", "demo", "out"]  # fmt: skip


def test_the_summary_never_writes_over_the_file_it_updates(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "summary.md"
    target.write_text(_marked())
    assert _summary(tmp_path, target) == 2
    assert "a file this command reads" in capsys.readouterr().err and target.read_text() == _marked()
