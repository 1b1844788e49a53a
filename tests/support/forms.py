"""What the tests of the pair losses parametrise over: batch sizes, and the candidate forms the docs promise."""

#: (N, d) of the reference checks: from the smallest batch with an in-batch negative (N = 2) up to N = 33.
SIZES = [(2, 3), (5, 4), (17, 8), (33, 16)]

#: name -> (symmetric, batch_negatives) of contrastive, hard_contrastive, simple and asymptotic_contrastive;
#: ``None`` is the default (batch negatives exactly when symmetric).
FORMS = {
    "symmetric": (True, None),
    "moco": (False, None),
    "moco_with_batch_keys": (False, True),
    "symmetric_queue_only": (True, False),
}


def expected_batch_negatives(form):
    """Whether a form's anchors see the other in-batch rows: its ``batch_negatives``, or ``symmetric`` by default."""
    symmetric, batch_negatives = FORMS[form]
    return batch_negatives if batch_negatives is not None else symmetric
