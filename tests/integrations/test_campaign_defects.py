"""Defects the fault campaign (tools/fault_campaign.py) found in the integrations, one regression test each.

Each bad argument is a ``TypeError`` or ``ValueError`` naming it, raised where it is given, never an error from
deep inside torch, nor silently accepted.
"""

import math

import pytest
import torch

from aligniform.integrations.common import hypersphere_metrics
from tests.support.sphere import sphere


def _unit():
    return sphere(8, 4, dtype=torch.float32)


def test_torchmetrics_update_names_an_argument_that_is_no_array():
    pytest.importorskip("torchmetrics")
    from aligniform.integrations.torchmetrics import HypersphereMetrics

    for x, y in ((None, _unit()), (_unit(), None)):
        with pytest.raises(TypeError, match="must be a tensor or an array of numbers, got NoneType"):
            HypersphereMetrics().update(x, y)
    with pytest.raises(TypeError, match="`x` is a meta tensor"):
        HypersphereMetrics().update(torch.empty(8, 4, device="meta"), _unit())


def test_hypersphere_metrics_refuses_a_meta_tensor():
    with pytest.raises(TypeError, match="`x` is a meta tensor"):
        hypersphere_metrics(torch.empty(8, 4, device="meta"), _unit())


@pytest.mark.parametrize("seed", [math.nan, None, "2", [2.0], True, 2.5])
def test_hypersphere_metrics_checks_its_options_as_the_integrations_do(seed):
    with pytest.raises(ValueError, match="`seed` must be an integer"):
        hypersphere_metrics(_unit(), _unit(), seed=seed)
    with pytest.raises(ValueError, match="`t` must be a positive"):
        hypersphere_metrics(_unit(), _unit(), t=math.nan)


@pytest.mark.parametrize("argument", ["views", "embed"])
def test_the_hf_callback_checks_its_functions_when_created(argument):
    pytest.importorskip("transformers")
    from aligniform.integrations.transformers import HypersphereCallback

    with pytest.raises(TypeError, match=f"`{argument}` must be a function"):
        HypersphereCallback([], **{argument: 5})


def test_the_sentence_evaluator_refuses_a_string_for_its_list_of_sentences():
    pytest.importorskip("sentence_transformers")
    from aligniform.integrations.sentence_transformers import HypersphereEvaluator

    with pytest.raises(TypeError, match="`sentences1` must be a list of sentences, got str"):
        HypersphereEvaluator("a cat", "a dog")  # once read as five one-letter sentences each
