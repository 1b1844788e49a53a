"""A Hugging Face `Trainer` run with an aligniform loss, measured by `HypersphereCallback`.

The model returns `{"loss": ...}` from an aligniform objective when given two views and
`{"embeddings": ...}` when given one; the callback measures held-out pairs every few steps and
adds `eval_hypersphere/...` to `trainer.evaluate()`.

    python examples/hf_trainer.py               # a few seconds on a CPU
"""

import torch
import torch.nn.functional as F
import transformers

from aligniform import Objective
from aligniform.integrations.transformers import HypersphereCallback


def two_views(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return inputs + 0.3 * torch.randn_like(inputs), inputs + 0.3 * torch.randn_like(inputs)


class PairEncoder(torch.nn.Module):
    def __init__(self, objective: str = "align(alpha=2) + uniform(t=2)"):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
        self.objective = Objective.parse(objective)

    def forward(self, x_view: torch.Tensor, y_view: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        x = F.normalize(self.net(x_view), dim=1)
        if y_view is None:
            return {"embeddings": x}
        return {"loss": self.objective(x, F.normalize(self.net(y_view), dim=1))}


class NoisyPairs(torch.utils.data.Dataset):
    """Two noisy views of random inputs, drawn once."""

    def __init__(self, n: int):
        self.x, self.y = two_views(torch.randn(n, 16))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x_view": self.x[index], "y_view": self.y[index]}


def main(steps: int = 30, out: str = "hf_trainer_out") -> dict[str, float]:
    transformers.set_seed(0)
    args = transformers.TrainingArguments(
        output_dir=out,
        max_steps=steps,
        per_device_train_batch_size=64,
        learning_rate=0.1,
        eval_strategy="no",
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=PairEncoder(), args=args, train_dataset=NoisyPairs(640), eval_dataset=NoisyPairs(64)
    )
    held_out = [(torch.randn(128, 16), torch.randint(0, 4, (128,)))]
    callback = HypersphereCallback(held_out, views=two_views, every_n_steps=10).attach(trainer)
    trainer.train()
    for entry in callback.history:
        print(
            f"step {entry['step']}: alignment {entry['hypersphere/alignment']:.3f}  "
            f"uniformity {entry['hypersphere/uniformity']:.3f}"
        )
    return trainer.evaluate()


if __name__ == "__main__":
    evaluation = main()
    assert "eval_hypersphere/alignment" in evaluation
