"""A plain PyTorch training loop that tracks alignment and uniformity with a torchmetrics metric.

An MLP encoder is trained with Wang & Isola's align + uniform objective on two noisy views of random
inputs; after every epoch `HypersphereMetrics` accumulates held-out pairs batch by batch and computes
alignment, uniformity, tolerance, effective rank, ... over all of them at once.

    python examples/torchmetrics_loop.py        # a few seconds on a CPU
"""

import torch
import torch.nn.functional as F

from aligniform import Objective
from aligniform.integrations.torchmetrics import HypersphereMetrics


def two_views(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmentation of this toy problem: two noisy copies of each input."""
    return inputs + 0.3 * torch.randn_like(inputs), inputs + 0.3 * torch.randn_like(inputs)


def main(epochs: int = 5) -> list[dict[str, float]]:
    torch.manual_seed(0)
    centres = torch.randn(4, 16)  # four classes, so that tolerance and the mean classifier mean something
    train_labels = torch.randint(0, 4, (512,))
    train = centres[train_labels] + 0.5 * torch.randn(512, 16)
    held_out_labels = torch.randint(0, 4, (256,))
    held_out = centres[held_out_labels] + 0.5 * torch.randn(256, 16)

    encoder = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    objective = Objective.parse("align(alpha=2) + uniform(t=2)")
    optimiser = torch.optim.SGD(encoder.parameters(), lr=0.5, momentum=0.9)
    metric = HypersphereMetrics()
    history = []
    for epoch in range(epochs):
        for batch in train[torch.randperm(len(train))].split(64):
            first, second = two_views(batch)
            loss = objective(F.normalize(encoder(first), dim=1), F.normalize(encoder(second), dim=1))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        metric.reset()
        with torch.no_grad():
            for inputs, labels in zip(held_out.split(64), held_out_labels.split(64)):
                first, second = two_views(inputs)
                metric.update(F.normalize(encoder(first), dim=1), F.normalize(encoder(second), dim=1), labels)
        values = {key: float(value) for key, value in metric.compute().items()}
        history.append(values)
        print(
            f"epoch {epoch + 1}: loss {loss.item():.3f}  alignment {values['alignment']:.3f}  "
            f"uniformity {values['uniformity']:.3f}  tolerance {values['tolerance']:.3f}"
        )
    return history


if __name__ == "__main__":
    history = main()
    # Training on align + uniform spreads the held-out embeddings: uniformity falls.
    assert history[-1]["uniformity"] < history[0]["uniformity"] + 0.05
