"""Training throughput: one step against the model's step on ready views, and the whole loop against a bare one.

Usage:
    python benchmarks/bench_training.py                  # mnist5k convnet, batch 256: step and loop (one cycle x 2)
    python benchmarks/bench_training.py --epochs 5 --rounds 3 --threads 1
    python benchmarks/bench_training.py --no-loop        # the step measurement only
    python benchmarks/bench_training.py --demo           # also time `aligniform demo` end to end
    python benchmarks/bench_training.py --validate-every 1  # the loop monitoring every epoch (default: unset)
    python benchmarks/bench_training.py --dataset digits --steps 20

**Step.** Trainer._train_step (index the in-memory uint8 images, augment two
views with kornia, encoder forward on both, objective, backward, SGD step)
against the encoder forward + objective + backward + step on views prepared in
advance: how much the data path costs (target >= 0.8).

**Loop** (issue 21). ``Trainer.fit`` as ``aligniform train`` runs it (held-out
monitoring every ``validate_every`` epochs, by default its cadence from
``aligniform.train.monitor``, with recomputed BatchNorm statistics; by default the
loop runs one such cycle of epochs, the last one monitored; checkpoint, best.pt
and metrics.jsonl with their fsyncs, TensorBoard, progress bars and epoch lines,
sent to /dev/null) against a bare loop written out below: the same model (same
seed, so the same initial weights), objective, optimiser, lr schedule,
augmentation, batches and epochs, and nothing else (no evaluation, no files, no
output). The two alternate in one process, ``--rounds`` times each; the ratio
(loop / bare images per second, target >= 0.9) is the median of the rounds'
ratios, so a load change hits both sides. Both end with the same weights (the
loop's evaluation draws no number from the training's random stream), which the
script checks. The loop's time is split into parts by timers around the
trainer's own functions: training steps, per-epoch validation (BatchNorm
re-estimation, features, view pairs, k-NN and metrics), the epoch's end
(checkpoint and best.pt written atomically, metrics.jsonl, fsyncs, TensorBoard,
epoch line) and the rest (progress bar, batching, schedule).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

import torch

import aligniform.train.monitor as monitor_module
from aligniform._validation import input_checks
from aligniform.augment import two_views
from aligniform.config import TrainConfig
from aligniform.distributed import shard_indices
from aligniform.train import Trainer, lifecycle
from aligniform.train.checkpoint import rng_state, set_rng_state
from aligniform.train.run_log import RunLog


def images_per_second(step, steps: int, batch: int, device: torch.device | None = None) -> float:
    step(0)  # warm-up
    _synchronize(device)
    started = time.perf_counter()
    for i in range(steps):
        step(i + 1)
    _synchronize(device)
    return steps * batch / (time.perf_counter() - started)


def _synchronize(device: torch.device | None) -> None:
    # CUDA runs asynchronously: without a barrier the clock would stop before the GPU is done.
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(dataset: str, model: str, batch_size: int, steps: int, device: str = "auto") -> dict[str, float]:
    """Images per second of the bare model step, the full training loop and the augmentation alone.

    All three run on one Trainer, each after its own warm-up step; ``device`` is the
    config's (cpu, cuda or auto). On a GPU the images are the trainer's copy on the device.
    """
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            dataset=dataset, model=model, batch_size=batch_size, out=out, progress=False, device=device
        )
        trainer = Trainer(config)
        images = trainer.train_images  # the same tensor as trainer.data.train.images on the CPU
        batch = batch_size
        n_batches = len(images) // batch
        trainer.network.train()

        def loop_step(i):
            index = torch.randperm(len(images), device=images.device)[:batch]
            trainer._train_step(images[index], 1, i)

        prepared = [two_views(trainer.augmentation, images[i * batch : (i + 1) * batch]) for i in range(n_batches)]

        def model_step(i):
            view1, view2 = prepared[i % n_batches]
            x, y = trainer.network(torch.cat([view1, view2])).chunk(2)
            loss = trainer.objective(x, y)
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            trainer.optimizer.step()

        on = trainer.device
        baseline = images_per_second(model_step, steps, batch, on)
        loop = images_per_second(loop_step, steps, batch, on)
        augment = images_per_second(lambda i: two_views(trainer.augmentation, images[:batch]), steps, batch, on)
    return {"baseline": baseline, "loop": loop, "augment": augment}


def loop_config(
    dataset: str, model: str, batch_size: int, epochs: int, out: str, device: str = "auto", **options
) -> TrainConfig:
    """The demo's recipe (contrastive, tau = 0.2, lr 0.12, cosine, dim 128, seed 0) on ``dataset``."""
    settings = {"objective": "contrastive(tau=0.2)", "lr": 0.12, "schedule": "cosine", "dim": 128, "seed": 0}
    settings.update(options)
    return TrainConfig(
        dataset=dataset, model=model, batch_size=batch_size, epochs=epochs, out=out, device=device, **settings
    )


def bare_loop(trainer: Trainer) -> None:
    """Train ``trainer``'s model for ``config.epochs`` epochs with nothing but the training itself.

    The same batches (the trainer's per-epoch permutation), augmentation, objective, optimiser and per-epoch
    schedule as ``Trainer.fit``; no validation, files, logging or progress output. One process, no warm-up, no
    GradCache, no MoCo (the settings this benchmark uses).
    """
    config, model, images = trainer.config, trainer.model, trainer.train_images
    batch = config.batch_size
    for epoch in range(1, config.epochs + 1):
        model.train()
        indices = shard_indices(len(images), 0, 1, config.seed, epoch)
        for step in range(len(indices) // batch):
            with torch.no_grad():
                view1, view2 = two_views(trainer.augmentation, images[indices[step * batch : (step + 1) * batch]])
            x, y = model(torch.cat([view1, view2])).chunk(2)
            with input_checks(False):  # as the trainer: the encoder's output is on the sphere
                loss = trainer.objective(x, y)
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            trainer.optimizer.step()
        trainer.scheduler.step()


class PartTimers:
    """Wall time spent in named functions while active (each wrapped for the block, then restored)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def _wrap(self, owner: object, name: str, part: str) -> Callable[[], None]:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - started

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, original)

    def _wrap_context(self, owner: object, name: str, part: str) -> Callable[[], None]:
        """Time a context manager's entry: for recomputed_batchnorm, the pass that recomputes the statistics."""
        original = getattr(owner, name)

        @contextlib.contextmanager
        def timed(*args, **kwargs):
            started = time.perf_counter()
            with original(*args, **kwargs) as value:
                self.seconds[part] += time.perf_counter() - started
                yield value

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, original)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        restore = [
            self._wrap(Trainer, "_train_step", "train steps"),
            self._wrap(Trainer, "validate", "validation"),
            self._wrap(Trainer, "_end_epoch", "epoch end"),
            self._wrap(Trainer, "_open_folder", "run folder: open (config, history, TensorBoard writer)"),
            self._wrap(Trainer, "close", "run folder: close"),
            self._wrap(RunLog, "write", "epoch end: metrics.jsonl + TensorBoard"),
            self._wrap(os, "fsync", "fsync (file and folder)"),
        ]
        parts = {
            "extract_features": "validation: bank and val features",
            "embed_view_pairs": "validation: view pairs",
            "knn_accuracy": "validation: k-NN",
        }
        for name, part in parts.items():
            if hasattr(monitor_module, name):
                restore.append(self._wrap(monitor_module, name, part))
        for name in ("recomputed_batchnorm", "recomputed_batchnorm_inputs"):
            if hasattr(monitor_module, name):
                restore.append(self._wrap_context(monitor_module, name, "validation: BatchNorm re-estimation"))
        restore.append(self._wrap(lifecycle, "save_atomic", "epoch end: checkpoint + best.pt (atomic)"))
        try:
            yield
        finally:
            for undo in reversed(restore):
                undo()


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Progress bars and epoch lines are produced as users see them, but written to /dev/null."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
        yield


def measure_loop(
    dataset: str,
    model: str,
    batch_size: int,
    epochs: int | None,
    rounds: int = 2,
    device: str = "auto",
    **options,
) -> dict:
    """The whole training loop (``Trainer.fit``) against :func:`bare_loop`, alternating in this process.

    ``epochs=None``: one monitoring cycle, the trainer's ``validate_every`` epochs (the last one monitored), so the
    loop's monitoring share is that of a long run.

    Each round builds two trainers from the same config (data loading and model building are not timed), runs
    ``fit`` on one and the bare loop on the other (the order alternates between rounds) and checks they end with
    the same weights. Returns the median ratio (loop / bare images per second), each round's ratio, the images
    per second of both, and the loop's seconds per part summed over the rounds (with ``bare``: the bare loops'
    seconds, the same training work).
    """
    if epochs is None:
        with tempfile.TemporaryDirectory() as out:
            epochs = Trainer(loop_config(dataset, model, batch_size, 1, out, device, **options)).validate_every
    ratios, loop_speeds, bare_speeds, same = [], [], [], True
    timers = PartTimers()
    loop_seconds = bare_seconds = 0.0
    for index in range(rounds):
        with tempfile.TemporaryDirectory() as out:
            config = loop_config(dataset, model, batch_size, epochs, out, device, **options)
            trainers = {"bare": Trainer(config.replace(out=os.path.join(out, "bare"))), "loop": Trainer(config)}
            validate_every = trainers["loop"].validate_every
            images = epochs * (len(trainers["bare"].data.train) // batch_size) * batch_size
            start_rng = rng_state()  # both start from the state their (equal) construction left
            seconds = {}
            for name in ("loop", "bare") if index % 2 == 0 else ("bare", "loop"):
                set_rng_state(start_rng)
                started = time.perf_counter()
                if name == "loop":
                    with timers.active(), _silenced(), trainers["loop"] as trainer:
                        trainer.fit()
                else:
                    bare_loop(trainers["bare"])
                _synchronize(trainers[name].device)
                seconds[name] = time.perf_counter() - started
            weights = [trainers[name].model.state_dict() for name in ("loop", "bare")]
            same = same and all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
        loop_seconds += seconds["loop"]
        bare_seconds += seconds["bare"]
        loop_speeds.append(images / seconds["loop"])
        bare_speeds.append(images / seconds["bare"])
        ratios.append(seconds["bare"] / seconds["loop"])
    parts = dict(timers.seconds)
    inner = sum(parts.get(name, 0.0) for name in ("train steps", "validation", "epoch end"))
    inner += sum(seconds for name, seconds in parts.items() if name.startswith("run folder"))
    parts["rest of the loop (progress bar, batching, schedule)"] = loop_seconds - inner
    return {
        "ratio": _median(ratios),
        "ratios": ratios,
        "loop_images_per_s": sorted(loop_speeds),
        "bare_images_per_s": sorted(bare_speeds),
        "same_weights": same,
        "loop_seconds": loop_seconds,
        "bare_seconds": bare_seconds,
        "parts": parts,
        "epochs": epochs,
        "validate_every": validate_every,
    }


def _median(values: list[float]) -> float:
    ordered, middle = sorted(values), len(values) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def print_loop(result: dict) -> None:
    loop, bare, epochs = result["loop_seconds"], result["bare_seconds"], result["epochs"]
    rounds = len(result["ratios"])
    print(
        f"  whole loop, {epochs} epochs x {rounds} rounds, monitoring every {result['validate_every']} epochs and the "
        "last (Trainer.fit against a bare loop, alternating):"
    )
    print(
        f"    loop / bare images per second: {result['ratio']:.2f} (target >= 0.9); rounds "
        + ", ".join(f"{ratio:.2f}" for ratio in result["ratios"])
        + f"; same final weights: {result['same_weights']}"
    )
    print(f"    bare loop {bare / (rounds * epochs):.2f} s/epoch, whole loop {loop / (rounds * epochs):.2f} s/epoch")
    print(f"    the loop's time by part (share of the loop; extra over bare = {loop - bare:.1f} s):")
    for part, seconds in sorted(result["parts"].items(), key=lambda item: (item[0].split(":")[0], item[0])):
        print(f"      {part:55s} {seconds:7.2f} s  {100 * seconds / loop:5.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--model", default="convnet")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--epochs", type=int, help="epochs per loop (default: one monitoring cycle)")
    parser.add_argument("--rounds", type=int, default=2, help="loop/bare pairs (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-loop", action="store_true", help="only the step measurement")
    parser.add_argument("--no-step", action="store_true", help="only the loop measurement")
    parser.add_argument("--demo", action="store_true", help="also time the demo end to end")
    parser.add_argument("--validate-every", type=int, help="monitoring every N epochs (default: the config's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not args.no_loop:
        print(f"{args.dataset} / {args.model} / batch {args.batch_size}, the demo's recipe:")
        result = measure_loop(
            args.dataset, args.model, args.batch_size, args.epochs, args.rounds, validate_every=args.validate_every
        )
        print_loop(result)
    if args.no_step:
        return
    speeds = measure(args.dataset, args.model, args.batch_size, args.steps)
    baseline, loop, augment, batch = speeds["baseline"], speeds["loop"], speeds["augment"], args.batch_size
    print(f"{args.dataset} / {args.model} / batch {batch}:")
    print(f"  model fwd+bwd+step on ready views: {baseline:8.0f} images/s")
    print(f"  full training loop:                {loop:8.0f} images/s  -> ratio {loop / baseline:.2f} (target >= 0.8)")
    print(f"  augmentation alone (two views):    {augment:8.0f} images/s")
    if args.demo:
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "aligniform", "demo", "--out", out], check=True, stdout=subprocess.DEVNULL
            )
            print(f"  aligniform demo wall time: {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
