"""Training throughput: the full loop against the model's forward + backward on ready tensors.

Usage:
    python benchmarks/bench_training.py                  # mnist5k convnet, batch 256
    python benchmarks/bench_training.py --demo           # also time `aligniform demo` end to end
    python benchmarks/bench_training.py --dataset digits --steps 20

The full loop is Trainer._train_step: index the in-memory uint8 images, augment
two views (kornia, batched), encoder forward on both views, objective, backward,
SGD step. The baseline does only the encoder forward + objective + backward +
step on views prepared in advance. The ratio (loop / baseline images per second)
says how much the data path costs; the target is >= 0.8.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

import torch

from aligniform.augment import two_views
from aligniform.config import TrainConfig
from aligniform.train import Trainer


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--model", default="convnet")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--demo", action="store_true", help="also time the demo end to end")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
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
