"""HTML report: every figure and table present, images valid, text escaped, bad folders handled."""

import base64
import csv
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml

from aligniform import plots
from aligniform.cli import main
from aligniform.report import render_report, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_PNG = "data:image/png;base64,"
CHROMIUM = Path("/usr/bin/chromium")


class ReportParser(HTMLParser):
    """Collects images, tables (rows and cells per table class), links and visible text."""

    def __init__(self):
        super().__init__()
        self.images, self.tags, self.urls, self.text = [], [], [], []
        self.tables = []  # [{"class": ..., "rows": [[(cell classes, text), ...], ...]}]
        self._table_stack, self._cell = [], None
        self._in_tbody = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.urls += [attrs[name] for name in ("src", "href") if name in attrs]
        if tag == "img":
            self.images.append(attrs)
        elif tag == "table":
            self.tables.append({"class": attrs.get("class", ""), "rows": []})
            self._table_stack.append(self.tables[-1])
        elif tag == "tbody":
            self._in_tbody = True
        elif tag == "tr" and self._in_tbody and self._table_stack:
            self._table_stack[-1]["rows"].append([])
        elif tag == "td" and self._in_tbody and self._table_stack:
            self._cell = [attrs.get("class") or "", ""]

    def handle_endtag(self, tag):
        if tag == "table" and self._table_stack:
            self._table_stack.pop()
        elif tag == "tbody":
            self._in_tbody = False
        elif tag == "td" and self._cell is not None:
            self._table_stack[-1]["rows"][-1].append(tuple(self._cell))
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell[1] += data

    def table(self, css_class):
        (table,) = [table for table in self.tables if table["class"] == css_class]
        return table["rows"]


def parse(document):
    parser = ReportParser()
    parser.feed(document)
    parser.close()
    return parser


def png_images(parser):
    """Decoded bytes of every <img>, asserting each is an inline PNG data URI."""
    decoded = []
    for image in parser.images:
        assert image["src"].startswith(DATA_PNG)
        data = base64.b64decode(image["src"][len(DATA_PNG) :], validate=True)
        assert data.startswith(PNG_MAGIC)
        decoded.append(data)
    return decoded


def epoch_records(epochs, final_accuracy):
    return [
        {
            "epoch": epoch,
            "loss": -2.0 + 1.0 / epoch,
            "align": 0.3 + 0.5 / epoch,
            "uniform": -3.0 + 1.0 / epoch,
            "val_alignment": 0.4 + 0.5 / epoch,
            "val_uniformity": -2.8 + 1.0 / epoch,
            "knn_acc": final_accuracy - 0.2 / epoch,
            "lr": 0.1,
            "seconds": 1.5,
        }
        for epoch in range(1, epochs + 1)
    ]


def make_run(folder, results, config=None, metrics=True, png=False):
    """A run folder as training writes it."""
    folder.mkdir(parents=True)
    config = config or {"loss": {"align": 1.0, "uniform": 1.0, "t": 2.0}, "optim": {"lr": 0.12}, "dim": 128}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    if metrics:
        records = epoch_records(4, results.get("knn_acc", 0.8))
        (folder / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    (folder / "results.json").write_text(json.dumps(results))
    if png:
        z = np.random.default_rng(0).normal(size=(64, 8))
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        plots.plot_alignment_histogram(z, np.roll(z, 1, axis=0), out=folder / "alignment")
    return folder


def results(linear, knn, alignment, uniformity, tolerance=0.3, mean_classifier=0.7):
    return {
        "linear_acc": linear,
        "knn_acc": knn,
        "mean_classifier_acc": mean_classifier,
        "alignment": alignment,
        "uniformity": uniformity,
        "tolerance": tolerance,
    }


# Rendering figures is the slow part, so each report is written once per module.
@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    first = make_run(root / "alexnet", results(0.8115, 0.7889, 0.52, -3.61), png=True)
    second = make_run(
        root / "resnet <b>&",  # a folder name that is also HTML
        results(0.7975, 0.7950, 0.61, -3.70),
        config={"note": "<script>alert(1)</script>", "tau": 0.5, "betas": [0.5, 0.999]},
    )
    return first, second


@pytest.fixture(scope="module")
def two_run_report(two_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out" / "report.html"
    assert write_report(two_runs, out, title="Runs & <friends>") == out
    return out.read_text()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweeps") / "sweep_tau"
    rows = []
    settings = [("contrastive", 0.1, 0.79), ("contrastive", 0.3, 0.83), ("contrastive", 1.0, 0.82)]
    for index, (loss, tau, linear) in enumerate([*settings, ("hard_contrastive", 0.3, 0.84)]):
        values = results(linear, linear - 0.02, 0.5 + 0.1 * index, -3.8 + 0.2 * index, tolerance=0.1 * (index + 1))
        make_run(folder / f"run{index}", values, config={"loss": loss, "tau": tau})
        rows.append({"run": f"run{index}", "loss": loss, "tau": tau, **values, "wall_seconds": 12.5})
    with (folder / "sweep.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


@pytest.fixture(scope="module")
def sweep_report(sweep):
    return write_report([sweep], sweep.parent / "sweep.html").read_text()


def test_report_has_a_row_curves_and_figures_per_run(two_run_report):
    parser = parse(two_run_report)
    # Both runs' trajectories overlaid, then per run: training curves, its trajectory (+ the PNG in the first folder).
    assert len(png_images(parser)) == 6
    trajectory = "alignment–uniformity trajectory"
    assert [image["alt"] for image in parser.images] == [
        "alignment–uniformity trajectories of 2 runs (Gao et al. 2021, Figure 2)",
        "training curves",
        trajectory,
        "alignment.png",
        "training curves",
        trajectory,
    ]
    assert 'id="trajectories"' in two_run_report
    rows = parser.table("results")
    assert len(rows) == 2
    assert rows[0][0][1] == "alexnet" and rows[1][0][1] == "resnet <b>&"
    assert rows[0][1] == ("number best", "81.15 %")  # highest linear accuracy
    assert rows[1][1] == ("number", "79.75 %")
    assert rows[1][2] == ("number best", "79.50 %")  # highest kNN accuracy
    assert rows[0][4] == ("number best", "0.5200")  # lowest alignment
    assert rows[1][5] == ("number best", "-3.7000")  # lowest uniformity
    assert "best" not in rows[0][6][0] + rows[1][6][0]  # tolerance has no best value
    assert rows[0][3] == rows[1][3] == ("number", "70.00 %")  # a tie: nothing to highlight
    assert len(parser.tables) == 1 + 2  # results + a config table per run


def test_report_escapes_text_and_references_nothing_outside(two_run_report):
    document = two_run_report
    assert "<title>Runs &amp; &lt;friends&gt;</title>" in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "resnet &lt;b&gt;&amp;" in document
    parser = parse(document)
    assert "script" not in parser.tags and "link" not in parser.tags and "b" not in parser.tags
    # Only inline images and in-page anchors: nothing to fetch.
    assert all(url.startswith((DATA_PNG, "#")) for url in parser.urls)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//|file:)", document)
    config_rows = parser.tables[2]["rows"]
    assert ("", "betas") in config_rows[0] + config_rows[1] + config_rows[2]
    assert ["note", "<script>alert(1)</script>"] in [[cell[1] for cell in row] for row in config_rows]
    text = "".join(parser.text)
    assert "Generated " in text


def test_sweep_report_has_scatter_temperature_curves_and_every_run(sweep_report):
    parser = parse(sweep_report)
    alts = [image["alt"] for image in parser.images]
    # scatter + temperature curves + the runs' trajectories overlaid + 4 x (training curves + trajectory)
    assert len(png_images(parser)) == 2 + 1 + 4 * 2
    assert alts[0].startswith("Alignment vs uniformity") and "temperature" in alts[1]
    assert alts[2].startswith("alignment–uniformity trajectories of 4 runs")
    assert alts[3:] == ["training curves", "alignment–uniformity trajectory"] * 4
    rows = parser.table("results")
    assert [row[0][1] for row in rows] == [f"sweep_tau/run{index}" for index in range(4)]
    assert rows[3][1] == ("number best", "84.00 %")
    assert len(parser.table("sweep-table")) == 4
    correlations = parser.table("correlations")
    assert correlations[0][0][1] == "linear_acc vs alignment" and correlations[2][1][1] == "4"


def test_missing_and_broken_files_are_reported_not_raised(tmp_path):
    only_results = tmp_path / "only_results"
    only_results.mkdir()
    (only_results / "results.json").write_text(json.dumps(results(0.5, 0.5, 1.0, -1.0)))
    broken = make_run(tmp_path / "broken", results(0.6, 0.6, 0.9, -2.0), metrics=False)
    (broken / "metrics.jsonl").write_text('{"epoch": 1, "loss": \n')
    (broken / "results.json").write_text("{not json")
    (broken / "fake.png").write_bytes(b"not a png at all")
    document = write_report([only_results, broken], tmp_path / "report.html").read_text()
    parser = parse(document)
    assert parser.images == []  # no curves and no trajectory from an unreadable metrics.jsonl
    assert "could not draw alignment" not in document
    assert len(parser.table("results")) == 2
    assert [cell[1] for cell in parser.table("results")[1][1:]] == ["—"] * 6
    assert "missing: config.yaml, metrics.jsonl" in document
    assert "results.json is not valid JSON" in document
    assert "could not draw training curves: ValueError" in document and "line 1" in document
    assert "fake.png is not a PNG file" in document


def test_runs_without_held_out_metrics_get_no_trajectory(tmp_path):
    plain = make_run(tmp_path / "plain", results(0.6, 0.6, 0.9, -2.0), metrics=False)
    (plain / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "loss": 1.0 / e}) + "\n" for e in (1, 2)))
    validated = make_run(tmp_path / "validated", results(0.7, 0.7, 0.8, -2.5))
    document = render_report([plain, validated])
    alts = [image["alt"] for image in parse(document).images]
    # One run with a path: its own trajectory, no overlay, and no problem noted for the run without one.
    assert alts == ["training curves", "training curves", "alignment–uniformity trajectory"]
    assert 'id="trajectories"' not in document and "could not draw" not in document


def test_sweep_without_accuracy_or_runs_is_explained(tmp_path):
    folder = tmp_path / "empty_sweep"
    folder.mkdir()
    (folder / "sweep.csv").write_text("tau,wall_seconds\n0.1,3\n0.2,4\n")
    document = render_report(folder)
    assert "no run sub-folders found" in document and "none of the accuracy columns" in document
    assert len(parse(document).table("sweep-table")) == 2


def test_paths_that_are_not_runs_or_sweeps_raise(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="neither a run folder"):
        write_report([tmp_path / "empty"], tmp_path / "r.html")
    with pytest.raises(ValueError, match="not a folder"):
        write_report([tmp_path / "nowhere"], tmp_path / "r.html")
    with pytest.raises(ValueError, match="not a folder"):
        write_report([tmp_path / "file.txt"], tmp_path / "r.html")
    with pytest.raises(ValueError, match="at least one"):
        write_report([], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_command_line_writes_the_report(tmp_path, capsys):
    run = make_run(tmp_path / "run", results(0.8, 0.7, 0.5, -3.0), metrics=False)
    out = tmp_path / "cli.html"
    assert main(["report", str(run), "-o", str(out), "--title", "CLI"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert "<h1>CLI</h1>" in out.read_text()


# Marks every image on load; the last <img> is a deliberately broken control that
# proves the check can fail. The copy's CSP must allow this one inline script.
CHECK_IMAGES = """
<img id="broken-control" alt="control" src="data:image/png;base64,AAAA">
<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (image) { return !(image.complete && image.naturalWidth > 0); });
  document.body.setAttribute("data-images", String(images.length));
  document.body.setAttribute("data-broken", broken.map(function (image) { return image.alt; }).join("|"));
  // Nothing wider than the 1280 px window: wide tables scroll inside themselves, not the page.
  var wide = document.documentElement.scrollWidth > window.innerWidth;
  document.body.setAttribute("data-overflow", wide ? "page " + document.documentElement.scrollWidth : "none");
});
</script>
"""


def _render_in_chromium(document, tmp_path):
    """The <body> tag of ``document`` after headless Chromium loaded it in a 1280 px window (with the probe)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (Debian package 'chromium'); cannot check rendering in a browser")
    assert "script-src 'none'" in document
    probe = document.replace("script-src 'none'", "script-src 'unsafe-inline'")
    probe = probe.replace("</body>", CHECK_IMAGES + "</body>")
    probe_path = tmp_path / "probe.html"
    probe_path.write_text(probe)
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=5000",
        "--window-size=1280,900",
        "--dump-dom",
        probe_path.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
    assert result.returncode == 0, result.stderr[-2000:]
    body = re.search(r"<body[^>]*>", result.stdout)
    assert body, result.stdout[:500]
    return body.group(0)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(sweep_report, tmp_path):
    expected_images = len(parse(sweep_report).images)
    body = _render_in_chromium(sweep_report, tmp_path)
    assert f'data-images="{expected_images + 1}"' in body
    assert 'data-broken="control"' in body, body  # every report image decoded
    assert 'data-overflow="none"' in body, body


@pytest.mark.slow
def test_a_wide_results_table_scrolls_inside_the_page_at_1280_px(tmp_path):
    # Many runs with long names and every metric key a user's results.json may hold: wider than the window.
    extra = {f"probe_accuracy_on_a_long_named_split_{i}": 0.5 + i / 100 for i in range(12)}
    runs = [
        make_run(tmp_path / f"a_long_descriptive_run_name_{i}", {**results(0.8, 0.7, 0.5, -3.5), **extra})
        for i in range(3)
    ]
    document = write_report(runs, tmp_path / "wide.html").read_text()
    assert len(parse(document).table("results")[0]) > 12
    body = _render_in_chromium(document, tmp_path)
    assert 'data-overflow="none"' in body, body


# ----------------------------------------------------------------------------- issue 19: outputs are safe


def _run_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("dataset: digits\n")
    (folder / "checkpoint.pt").write_bytes(b"weights")
    (folder / "results.json").write_text(json.dumps({"knn_acc": 0.5}))
    return folder


def test_write_report_refuses_a_run_file_and_an_input_before_any_work(tmp_path, monkeypatch):
    from aligniform.errors import OptionError

    run = _run_folder(tmp_path / "run")
    (run / "loss.png").write_bytes(b"\x89PNG")
    monkeypatch.setattr("aligniform.report.render_report", lambda *args: pytest.fail("rendered before the check"))
    with pytest.raises(OptionError, match=r"`out` .*checkpoint\.pt would replace checkpoint\.pt, a file of the run"):
        write_report(run, run / "checkpoint.pt")
    with pytest.raises(OptionError, match=r"`out` .*loss\.png is .*loss\.png, a file this command reads"):
        write_report(run, run / "loss.png")
    assert (run / "checkpoint.pt").read_bytes() == b"weights" and (run / "loss.png").read_bytes() == b"\x89PNG"


def test_write_report_is_atomic(tmp_path, monkeypatch):
    import errno

    run = _run_folder(tmp_path / "run")
    out = tmp_path / "report.html"
    out.write_text("previous")

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("aligniform._io.os.fsync", full)
    with pytest.raises(OSError, match="No space left") as error:
        write_report(run, out)
    assert error.value.filename == str(out)  # the file, never the hidden temporary one
    assert out.read_text() == "previous" and sorted(path.name for path in tmp_path.iterdir()) == ["report.html", "run"]


def test_save_figure_writes_png_and_svg_atomically(tmp_path, monkeypatch):
    import errno

    figure = plots.new_figure(2, 2)
    figure.add_subplot().plot([0, 1], [1, 0])
    png, svg = plots.save_figure(figure, tmp_path / "fig.png")
    assert png.read_bytes().startswith(b"\x89PNG") and b"<svg" in svg.read_bytes()
    before = png.read_bytes(), svg.read_bytes()
    written = []

    def full(stream_fd):
        written.append(stream_fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("aligniform._io.os.fsync", full)
    with pytest.raises(OSError) as error:
        plots.save_figure(figure, tmp_path / "fig")
    assert error.value.filename == str(png)
    assert (png.read_bytes(), svg.read_bytes()) == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "fig.png", "fig.svg"]  # fmt: skip
