"""The main job: contrastive vs. align + uniform on the embedded MNIST subset, judged as the paper does.

Two encoders with the same architecture, data, augmentation and budget; the
only difference is the objective. Both are evaluated with a linear probe,
5-NN and the mean classifier, and measured by alignment, uniformity and
tolerance; raw-pixel linear and 5-NN baselines give context.
"""

from __future__ import annotations

import time
from pathlib import Path

from ._validation import check_output_path, check_positive_int
from .config import TrainConfig

# The demo's budget: sized to finish in a few minutes on 2 CPU cores.
DEMO_EPOCHS = 30
# Held-out monitoring (two passes over the bank) every 3rd epoch and at the last: it was a quarter of each epoch's
# time, and it trains nothing, so the weights and every final number are the same as with monitoring every epoch.
DEMO_VALIDATE_EVERY = 3
DEMO_OBJECTIVES = {
    "contrastive": "contrastive(tau=0.2)",
    "align_uniform": "align(alpha=2) + uniform(t=2)",
}


def demo_config(name: str, objective: str, out: Path, epochs: int, device: str) -> TrainConfig:
    """The training config of one of the demo's encoders."""
    return TrainConfig(
        dataset="mnist5k",
        model="convnet",
        objective=objective,
        epochs=epochs,
        batch_size=256,
        lr=0.12,
        schedule="cosine",
        dim=128,
        seed=0,
        device=device,
        out=str(out / name),
        linear_probe="short",
        validate_every=DEMO_VALIDATE_EVERY,
    )


#: The files the demo writes into its folder besides its runs (``results.json`` is its summary, see below).
DEMO_FILES = ("report.html", "training_curves.png", "training_curves.svg")


def check_demo_folder(out: str | Path, epochs: int, device: str = "auto") -> Path:
    """``out`` as a folder the demo may write into without replacing anything it did not make itself.

    The demo writes ``results.json`` (its summary), a report and figures into ``out`` and replaces its two runs
    in ``out/<name>`` (see :data:`DEMO_OBJECTIVES`). So ``out`` may not be a run's folder (its ``results.json``
    is the run's), and a run in ``out/<name>`` is replaced only if it is the demo's: trained with the demo's
    config, whatever its epochs and device. Nothing is created.

    Raises:
        OptionError: naming `out` and what it would replace.

    Examples:
        >>> import tempfile
        >>> run = Path(tempfile.mkdtemp())
        >>> _ = (run / "results.json").write_text('{"knn_acc": 0.9}')
        >>> check_demo_folder(run, epochs=1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        aligniform.errors.OptionError: `out` .../results.json would replace results.json, a file of the run in ...
    """
    from .errors import OptionError
    from .train.reuse import same_config, saved_config
    from .train.run_folder import existing_run_files

    folder = Path(out).expanduser()
    own_summary = _is_demo_summary(folder / "results.json")
    files = DEMO_FILES if own_summary else ("results.json", *DEMO_FILES)
    folder = check_output_path(folder, "`out`", folder=True, files=files)
    for name, objective in DEMO_OBJECTIVES.items():
        run_dir = folder / name
        if not run_dir.is_dir() or not existing_run_files(run_dir):
            continue
        saved = saved_config(run_dir)
        wanted = demo_config(name, objective, folder, epochs, device)
        if saved is None or not same_config(saved.replace(epochs=epochs), wanted):
            raise OptionError(
                f"`out` {folder}: {run_dir} holds a run that is not the demo's '{name}' run, and the demo would "
                "replace it; choose another `out` (the demo replaces only its own runs)"
            )
    return folder


def _is_demo_summary(path: Path) -> bool:
    """Whether ``path`` is a ``results.json`` the demo wrote (its summary, not a run's results)."""
    import json

    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and summary.get("objectives") == DEMO_OBJECTIVES and "results" in summary


def run_demo(out: str | Path, epochs: int | None = None, device: str = "auto") -> dict:
    """Train both encoders, evaluate them and the raw-pixel baselines, write results, figures and a report.

    Args:
        out: the demo's folder (created if missing).
        epochs: epochs per encoder (default :data:`DEMO_EPOCHS`).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Raises:
        ValueError: ``epochs`` is not a positive integer, ``out`` cannot be a folder to write in, or writing
            there would replace a file that is not the demo's own (see :func:`check_demo_folder`).
    """
    from ._io import write_json
    from .analysis.format import format_results
    from .build import labelled_split
    from .data import dataset_info, load_dataset
    from .evaluate import raw_pixel_baselines
    from .plots import plot_training_curves
    from .report import write_report
    from .train import run
    from .train.run_log import read_metrics

    epochs = DEMO_EPOCHS if epochs is None else check_positive_int(epochs, "epochs")
    out = check_demo_folder(out, epochs, device)
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    info = dataset_info("mnist5k")
    print("raw-pixel baselines (linear probe and 5-NN on the 784 pixels) ...", flush=True)
    baselines = raw_pixel_baselines(
        load_dataset("mnist5k", split=labelled_split(info)), load_dataset("mnist5k", split=info.test_split)
    )
    rows["raw pixels"] = baselines
    for name, objective in DEMO_OBJECTIVES.items():
        print(f"training '{name}': {objective}, {epochs} epochs ...", flush=True)
        rows[name] = run(demo_config(name, objective, out, epochs, device), overwrite=True)
    curves = {name: read_metrics(out / name) for name in DEMO_OBJECTIVES}
    plot_training_curves(curves, out=out / "training_curves")
    seconds = time.perf_counter() - started
    summary = {"results": rows, "epochs": epochs, "objectives": DEMO_OBJECTIVES, "wall_seconds": seconds}
    write_json(out / "results.json", summary)
    report = write_report(
        [out / name for name in DEMO_OBJECTIVES], out / "report.html", title="aligniform demo: mnist5k"
    )
    print()
    print(format_results(rows))
    print()
    for name in DEMO_OBJECTIVES:
        beats = all(rows[name][key] > baselines[key] for key in ("linear_acc", "knn_acc"))
        print(f"{name}: {'beats' if beats else 'does NOT beat'} the raw-pixel linear and 5-NN baselines")
    print(f"\nwall time {seconds / 60:.1f} min; results in {out / 'results.json'}, figures in {out}, report {report}")
    return summary
