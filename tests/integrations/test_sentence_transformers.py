"""HypersphereEvaluator and ObjectiveLoss with the packaged all-MiniLM-L6-v2, fine-tuned for a few steps."""

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
pytest.importorskip("datasets", reason="datasets (needed by SentenceTransformerTrainer) is not installed")

from aligniform import metrics  # noqa: E402
from aligniform.integrations.sentence_transformers import (  # noqa: E402
    AlignUniformLoss,
    HypersphereEvaluator,
    ObjectiveLoss,
)
from tests.integrations.sentences import PAIRS, load_packaged_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")

FIRST, SECOND = (list(side) for side in zip(*PAIRS))


@pytest.fixture(scope="module")
def model():
    return load_packaged_model()


def encode(model, texts):
    return model.encode(texts, convert_to_tensor=True, show_progress_bar=False).float().cpu()


def test_evaluator_equals_aligniform_metrics_on_the_models_own_embeddings(model):
    labels = [index % 4 for index in range(len(PAIRS))]
    evaluator = HypersphereEvaluator(FIRST, SECOND, labels, name="paraphrases", batch_size=8)
    model.train()
    values = evaluator(model)
    assert model.training  # encode() switched to eval mode; the evaluator switched back
    x, y = F.normalize(encode(model, FIRST), dim=1), F.normalize(encode(model, SECOND), dim=1)
    assert values["paraphrases_alignment"] == pytest.approx(metrics.alignment(x, y), rel=1e-6)
    assert values["paraphrases_uniformity"] == pytest.approx(metrics.uniformity(x), rel=1e-6)
    assert values["paraphrases_uniformity_y"] == pytest.approx(metrics.uniformity(y), rel=1e-6)
    assert values["paraphrases_modality_gap"] == pytest.approx(metrics.modality_gap(x, y), rel=1e-5)
    assert values["paraphrases_tolerance"] == pytest.approx(metrics.tolerance(x, labels), rel=1e-5)
    assert values["paraphrases_recall_at_1_x_to_y"] == metrics.retrieval_recall(x, y)
    assert values["paraphrases_effective_rank"] == pytest.approx(metrics.effective_rank(x), rel=1e-6)
    assert evaluator.primary_metric == "paraphrases_recall_at_1_x_to_y" and evaluator.greater_is_better
    assert values["paraphrases_recall_at_1_x_to_y"] > 0.9  # a trained model retrieves paraphrases


def test_evaluator_rejects_bad_inputs():
    with pytest.raises(ValueError, match="equally long"):
        HypersphereEvaluator(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="primary_metric"):
        HypersphereEvaluator(["a", "b"], ["c", "d"], primary_metric="accuracy")
    with pytest.raises(ValueError, match=r"`labels` must be a 1-D vector with one label per row \(2\)"):
        HypersphereEvaluator(["a", "b"], ["c", "d"], labels=[0, 1, 2])
    with pytest.raises(ValueError, match=r"`labels` must be a 1-D list of class names"):
        HypersphereEvaluator(["a", "b"], ["c", "d"], labels=np.array([["x", "y"]]))
    with pytest.raises(TypeError, match="`labels` must be all integers or all strings"):
        HypersphereEvaluator(["a", "b"], ["c", "d"], labels=[0, "b"])


def test_evaluator_maps_class_names_to_ids_in_sorted_order():
    # The metrics only compare labels, so names give the numbers their ids give.
    evaluator = HypersphereEvaluator(["a", "b", "c"], ["d", "e", "f"], labels=["b", "a", "b"])
    assert evaluator.labels.tolist() == [1, 0, 1]
    x = F.normalize(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    named = evaluator.options.metrics(x, x, evaluator.labels)
    numbered = evaluator.options.metrics(x, x, torch.tensor([7, 3, 7]))
    assert named == numbered


def test_objective_loss_is_the_objective_on_the_pair_embeddings(model):
    model.eval()  # no dropout: the two forward passes below must agree
    features = [model.tokenize(FIRST[:8]), model.tokenize(SECOND[:8])]
    loss = ObjectiveLoss(model, "contrastive(tau=0.05) + 0.5*uniform(t=2)")
    components = loss(features)
    assert set(components) == {"contrastive", "uniform"}  # weighted terms: the trainer logs each and sums them
    value = torch.stack(list(components.values())).sum()
    value.backward()
    assert any(parameter.grad is not None for parameter in model.parameters())
    model.zero_grad()
    with torch.no_grad():
        x, y = (F.normalize(model(feature)["sentence_embedding"], dim=1) for feature in features)
    from aligniform import contrastive_loss
    from aligniform.losses import uniform_loss

    uniform = (float(uniform_loss(x, t=2)) + float(uniform_loss(y, t=2))) / 2
    assert float(components["contrastive"].detach()) == pytest.approx(float(contrastive_loss(x, y, tau=0.05)), rel=1e-4)
    assert float(components["uniform"].detach()) == pytest.approx(0.5 * uniform, rel=1e-4)
    assert loss.last_terms["uniform"] == pytest.approx(uniform, rel=1e-4)  # unweighted
    assert loss.get_config_dict() == {"spec": "contrastive(tau=0.05) + 0.5*uniform(t=2)", "normalize": True}
    with pytest.raises(ValueError, match="two text columns"):
        loss(features[:1])


def test_fine_tuning_with_align_uniform_moves_the_metrics_the_expected_way(model, tmp_path):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    model = copy.deepcopy(model)
    evaluator = HypersphereEvaluator(FIRST, SECOND)
    before = evaluator(model)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=4,
        per_device_train_batch_size=16,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        logging_steps=2,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    loss = AlignUniformLoss(model)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict({"anchor": FIRST, "positive": SECOND}),
        loss=loss,
        evaluator=evaluator,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    after = evaluator(model)
    assert set(loss.last_terms) == {"align", "uniform"}
    # The loss components reach the trainer's log beside its loss, and add up to it.
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in logged] == [2, 4]
    for entry in logged:
        assert entry["align"] + entry["uniform"] == pytest.approx(entry["loss"], abs=2e-4)  # each rounded to 4 places
    # Minimising align + uniform on these pairs: positives closer, the embeddings more spread out.
    assert after["alignment"] < 0.8 * before["alignment"]
    assert after["uniformity"] < before["uniformity"] and after["uniformity_y"] < before["uniformity_y"]
    assert trainer.evaluate()["eval_alignment"] == pytest.approx(after["alignment"], rel=1e-6)
