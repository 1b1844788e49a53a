"""Training: the loop (:class:`Trainer`), checkpoints, and :func:`run`, which trains and then evaluates."""

from .checkpoint import CheckpointError, ModelInfo, load_checkpoint, save_atomic
from .resolve import resolve_config
from .run import evaluate_trained, run
from .run_folder import ResultsNotSaved, RunFolderError, RunFolderWriteError
from .trainer import Trainer, TrainingDiverged

__all__ = [
    "CheckpointError",
    "ModelInfo",
    "ResultsNotSaved",
    "RunFolderError",
    "RunFolderWriteError",
    "Trainer",
    "TrainingDiverged",
    "evaluate_trained",
    "load_checkpoint",
    "resolve_config",
    "run",
    "save_atomic",
]
