"""The training loop: two views → encoder → objective, with exact resume and per-epoch evaluation."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .._extras import requires_extra
from .._validation import input_checks
from ..augment import two_views
from ..build import build_encoder, build_optimizer, build_transforms, input_size, load_training_data
from ..config import ConfigError, TrainConfig
from ..distributed import (
    DistributedContext,
    all_gather_with_grad,
    average_gradients,
    barrier,
    convert_sync_batchnorm,
    global_loss,
    init_distributed,
    seed_worker,
    shard_indices,
    wrap_ddp,
)
from ..evaluate.batchnorm import batchnorm_layers
from ..models import resolve_eval_layer
from ..objective import Objective
from .checkpoint import (
    CheckpointError,
    ModelInfo,
    damaged_checkpoint,
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from .features import RawOutput, check_data_options
from .grad_cache import grad_cache_backward, grad_cache_pairs_backward
from .lifecycle import RunFolder, check_processes, prepare_on_main
from .moco import FeatureQueue, MomentumEncoder
from .monitor import cadence_text, held_out_metrics, monitoring_cadence
from .schedule import build_scheduler, follow_schedule, set_warmup, warmup_factor

with requires_extra("train"):
    from tqdm.auto import tqdm


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class Trainer:
    """Trains one encoder as a :class:`TrainConfig` describes, writing into ``config.out``.

    Files: ``config.yaml`` (resolved config), ``history.yaml`` (starts,
    resumes and the options they changed), ``metrics.jsonl`` (per epoch),
    ``checkpoint.pt`` (last epoch, holding the config, history and metrics
    too), ``best.pt`` (best held-out 5-NN accuracy), ``tensorboard/``;
    :func:`aligniform.train.run` adds ``results.json``. Everything the config
    implies (data, model, layer, batch size) is checked when the trainer is
    built, before :meth:`fit` writes anything; see ``docs/runs.md`` for the
    run folder's contract. Under ``torchrun`` every rank trains on its shard
    of each global batch, the losses see the gathered global batch, and only
    rank 0 writes.

    Examples:
        >>> from aligniform.config import TrainConfig
        >>> from aligniform.train import Trainer
        >>> trainer = Trainer(TrainConfig(dataset="digits", epochs=1, out="/tmp/aligniform-doc"))  # doctest: +SKIP
        >>> trainer.fit()  # doctest: +SKIP
    """

    def __init__(self, config: TrainConfig, context: DistributedContext | None = None):
        self.config = config
        self.context = context or init_distributed(config.device)
        self.device = self.context.device
        self.out = Path(config.out)
        seed_worker(config.seed, self.context.rank)  # rank 0 keeps the seed; others get derived ones
        self.data = load_training_data(config)
        self.augmentation, self.eval_transform = build_transforms(config, self.data.train)
        self.train_images = self._images_on_device(self.data.train.images)
        self.model = build_encoder(config, self.data.train).to(self.device)
        if config.sync_bn:
            self.model = convert_sync_batchnorm(self.model, self.context)
        self.objective = Objective.parse(config.objective).to(self.device)  # may hold a learnt temperature
        if self.objective.uses_labels and bool((self.data.train.labels < 0).any()):
            raise ConfigError(
                f"{config.objective}: a supervised objective needs labels, and {config.dataset}'s "
                "training split has unlabelled images"
            )
        self.optimizer = build_optimizer(config, self.model, self.objective)
        self.scheduler = build_scheduler(
            self.optimizer, config.schedule, config.epochs, config.milestones, config.lr_decay
        )
        self.network = wrap_ddp(self.model, self.context)  # DDP broadcasts rank 0's initial weights here
        # Objectives such as barlow_twins take the features before the encoder's L2 normalisation.
        self.raw_output = None if self.objective.unit_features else RawOutput(self.model)
        self.key_encoder = (
            MomentumEncoder(self.model, config.moco_momentum, config.moco_bn_groups) if config.moco else None
        )
        self.queue = (
            FeatureQueue(config.queue_size, config.dim, torch.Generator().manual_seed(config.seed)).to(self.device)
            if config.moco
            else None
        )
        try:  # checked now: a wrong layer name must not wait for the end of the first epoch
            self.eval_layer = resolve_eval_layer(self.model, config.eval_layer)
        except ValueError as error:
            raise ConfigError(f"eval_layer: {error}") from None
        # The monitor's k-NN searches the bank, the smallest labelled set a run's k-NN uses.
        labelled = min(len(self.data.bank), len(self.data.labelled_train))
        check_data_options(config, len(self.data.train), labelled, self.context.world_size)
        #: Epochs between held-out monitorings (and the last epoch): the config's, else :mod:`.monitor`'s default.
        self.validate_every = config.validate_every or monitoring_cadence(
            self._steps_per_epoch() * self.local_batch_size,
            len(self.data.bank),
            len(self.data.val),
            batchnorm=bool(batchnorm_layers(self.model)),
        )
        self.epoch = 0  # epochs completed
        self.best_knn = -math.inf
        self.best_epoch = 0  # the epoch best.pt holds (0: none yet)
        self.metrics: list[dict] = []  # every epoch's record, also kept in the checkpoint
        self.history: list[dict] = []  # starts and resumes with the options they changed
        self.folder = RunFolder(config)  # opened (and locked) by fit() on rank 0 only

    # ------------------------------------------------------------------ setup

    def _images_on_device(self, images: torch.Tensor) -> torch.Tensor:
        """On a GPU, keep the uint8 training images there (up to 4 GiB): no host-to-device copy per step."""
        if self.device.type == "cuda" and images.numel() <= 4 * 2**30:
            return images.to(self.device)
        return images

    @property
    def local_batch_size(self) -> int:
        """This process's share of the global batch (that it divides evenly is checked when the trainer is built)."""
        return self.config.batch_size // self.context.world_size

    def _steps_per_epoch(self) -> int:
        """Steps of each epoch: >= 1, the batch fits the training set (check_data_options)."""
        return len(self.data.train) // self.context.world_size // self.local_batch_size  # shard_indices' drop_last

    def _autocast(self):
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.config.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    # ------------------------------------------------------------------ state

    def _rng_states(self) -> list:
        """Every rank's RNG state (a collective under torchrun): each rank draws its own augmentations."""
        state = rng_state()
        if not self.context.is_distributed:
            return [state]
        states = [None] * self.context.world_size
        dist.all_gather_object(states, state)
        return states

    def state_dict(self, rng_states: list | None = None) -> dict:
        """Everything exact resume needs, and the run's record: its config, history and every epoch's metrics."""
        return {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "best_knn": self.best_knn,
            "best_epoch": self.best_epoch,
            "metrics": list(self.metrics),
            "history": list(self.history),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "key_encoder": None if self.key_encoder is None else self.key_encoder.state_dict(),
            "objective": self.objective.state_dict(),  # learnt arguments, e.g. tau=learn(0.07)
            "queue": None if self.queue is None else self.queue.state_dict(),
            "rng": rng_states if rng_states is not None else self._rng_states(),
            "model_info": self.model_info.to_dict(),
        }

    @property
    def model_info(self) -> ModelInfo:
        """The description a checkpoint needs to rebuild this run's encoder."""
        return ModelInfo(
            name=self.config.model,
            dim=self.config.dim,
            in_channels=self.data.train.channels,
            image_size=input_size(self.config, self.data.train),
            dataset=self.config.dataset,
        )

    def load_state_dict(self, state: dict) -> None:
        """Continue from a checkpoint's state (see :meth:`state_dict`).

        Raises:
            CheckpointError: the state does not fit this trainer, or a part of it is damaged (one line).
        """
        check_processes(state, self.context.world_size)
        with damaged_checkpoint(self.out / "checkpoint.pt"):
            self._load_state_dict(state)

    def _load_state_dict(self, state: dict) -> None:
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise CheckpointError(
                f"the checkpoint's weights do not fit this {self.config.model} "
                f"({str(error).splitlines()[0]}); it was trained with other options"
            ) from None
        if "objective" in state:  # checkpoints written before objectives could learn have none
            self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.key_encoder is not None:
            self.key_encoder.load_state_dict(state["key_encoder"])
            self.queue.load_state_dict(state["queue"])
        self.epoch, self.best_knn = state["epoch"], state["best_knn"]
        self.best_epoch = state.get("best_epoch", 0)
        if "metrics" in state:  # else (older checkpoints) fit() recovers them from metrics.jsonl
            self.metrics = list(state["metrics"])
        self.history = list(state.get("history", []))
        set_rng_state(state["rng"][self.context.rank])
        follow_schedule(self.optimizer, self.scheduler)  # a resume may have changed `epochs`

    # ------------------------------------------------------------------ training

    def fit(self, resume: bool = False, overwrite: bool = False) -> None:
        """Train for ``config.epochs`` epochs in the run folder ``config.out``.

        Rank 0 opens the folder first (:meth:`aligniform.train.lifecycle.RunFolder.open`): a folder holding a
        run is continued only with ``resume`` (which may change only the options
        :data:`~aligniform.train.run_folder.RESUMABLE_OPTIONS`), replaced only with ``overwrite``, and every
        check runs before anything is written. The folder stays locked until :meth:`close`.

        Raises:
            RunFolderError: the folder cannot be used as asked or is locked by another process.
            RunFolderWriteError: a write failed (an :class:`OSError` naming the file and how to go on).
            CheckpointError: ``resume`` and the checkpoint is missing or unreadable.
        """
        restored, main_restored = prepare_on_main(self.context, lambda: self._open_folder(resume, overwrite))
        if restored is None and resume and not self.context.is_main and main_restored:
            # On the CPU: RNG states must stay CPU byte tensors; load_state_dict copies the rest to the device.
            restored = load_checkpoint(self.out / "checkpoint.pt", map_location="cpu")
        if restored is not None:
            self.load_state_dict(restored)
        if self.config.validate_every is None and self.config.progress and self.context.is_main:
            if self.epoch < self.config.epochs:
                tqdm.write(f"held-out monitoring {cadence_text(self.validate_every, self.config.epochs)}")
        try:
            while self.epoch < self.config.epochs:
                self._train_epoch()
        finally:
            self.folder.close_log()

    def close(self) -> None:
        """Release the run folder's lock (:func:`aligniform.train.run` calls this after writing the results)."""
        self.folder.close()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open_folder(self, resume: bool, overwrite: bool) -> dict | None:
        """Open the run folder (rank 0); start this run's record from it. Return the state to continue from."""
        state = self.folder.open(resume, overwrite, self.model_info, self.context.world_size)
        self.metrics, self.history = self.folder.metrics, self.folder.history
        return state

    def _train_epoch(self) -> None:
        epoch = self.epoch + 1
        started = time.perf_counter()
        self.network.train()
        indices = shard_indices(
            len(self.data.train), self.context.rank, self.context.world_size, self.config.seed, epoch
        )
        steps = len(indices) // self.local_batch_size  # == _steps_per_epoch()
        totals: dict[str, float] = {}
        bar = tqdm(
            range(steps),
            desc=f"epoch {epoch}/{self.config.epochs}",
            leave=False,
            disable=not (self.config.progress and self.context.is_main),
        )
        scheduled = [group["lr"] for group in self.optimizer.param_groups]  # this epoch's lr before warm-up
        for step in bar:
            batch = indices[step * self.local_batch_size : (step + 1) * self.local_batch_size]
            images = self.train_images[batch.to(self.train_images.device)]
            labels = self.data.train.labels[batch].to(self.device) if self.objective.uses_labels else None
            # The factor comes from the global step, derived from the epoch, so a resumed run continues its warm-up.
            warmup = warmup_factor((epoch - 1) * steps + step + 1, self.config.warmup_epochs * steps)
            set_warmup(self.optimizer, scheduled, warmup, self.config.warmup_epochs > 0)
            terms = self._train_step(images.to(self.device, non_blocking=True), epoch, step + 1, labels)
            for key, value in terms.items():
                totals[key] = totals.get(key, 0.0) + value
            # No refresh of its own: tqdm redraws at most every 0.1 s (mininterval), not once per step.
            bar.set_postfix({k: f"{v:.3f}" for k, v in terms.items()}, refresh=False)
        lr = self.optimizer.param_groups[0]["lr"]
        # The schedule steps from its own value (a step schedule multiplies the lr).
        set_warmup(self.optimizer, scheduled, 1.0, self.config.warmup_epochs > 0)
        self.scheduler.step()
        self.epoch = epoch
        record = {"epoch": epoch, **{k: v / steps for k, v in totals.items()}, "lr": lr}
        record.update(self.objective.learned_values())  # e.g. contrastive_tau, at the end of the epoch
        if epoch % self.validate_every == 0 or epoch == self.config.epochs:
            record.update(self.validate())
        record["seconds"] = time.perf_counter() - started
        self._end_epoch(record)

    def _train_step(
        self, images: torch.Tensor, epoch: int, step: int, labels: torch.Tensor | None = None
    ) -> dict[str, float]:
        with torch.no_grad():
            view1, view2 = two_views(self.augmentation, images)
        queue = None if self.queue is None else self.queue.features.clone()
        moco = self.key_encoder is not None
        keys: list[torch.Tensor] = []  # this step's gathered MoCo keys, for the queue
        supervised = {} if labels is None else {"labels": labels}  # only supervised objectives get labels

        def batch_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            # The encoder ends in L2 normalisation, so the per-call value checks would only cost a
            # GPU sync per step; a diverged encoder shows up as a non-finite loss just below.
            with input_checks(False):
                # The global batch's loss; under torchrun each rank computes its own rows' share of it.
                loss = global_loss(self.objective, x, y, queue=queue, moco=moco, **supervised)
            if not torch.isfinite(loss):
                raise TrainingDiverged(self._divergence_message(epoch, step))
            if moco:
                keys.append(all_gather_with_grad(y.detach()))  # every rank's keys, for the queue
            return loss

        chunk = self.config.grad_cache
        if chunk is None:
            # MoCo: queries and keys; otherwise one pass over both views, as the authors do (BatchNorm sees both).
            x, y = (self._embed(view1), self._keys(view2)) if moco else self._embed(torch.cat([view1, view2])).chunk(2)
            loss = batch_loss(x, y)
            # Freed just before backward, the old gradients' memory serves the new ones: the step ran ~9 % faster on
            # the CPU than with the gradients freed before the forward pass (same values either way).
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        else:
            self.optimizer.zero_grad(set_to_none=True)  # GradCache's backward runs inside its own forward passes
            if moco:  # the keys need no graph: the key encoder embeds the whole batch
                loss = grad_cache_backward(
                    self._embed, view1, lambda x: batch_loss(x, self._keys(view2)), chunk, module=self.network
                )
            else:
                loss = grad_cache_pairs_backward(self._embed, view1, view2, batch_loss, chunk, module=self.network)
        average_gradients(self.objective.parameters())  # DDP averages the encoder's; these are outside it
        self.optimizer.step()
        if self.key_encoder is not None:
            self.key_encoder.update(self.model)
            self.queue.push(keys[-1])
        return {"loss": float(loss.detach()), **self.objective.last_terms}

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        """The trained encoder's embeddings of ``images`` (with gradient), float32 on the sphere (or raw)."""
        with self._autocast(), self._objective_features():
            z = self.network(images)
        return self._on_sphere(z)

    def _keys(self, images: torch.Tensor) -> torch.Tensor:
        """The MoCo key encoder's embeddings (no gradient; shuffle-BN, see train/moco.py), as :meth:`_embed`."""
        with self._autocast(), self._objective_features():
            z = self.key_encoder(images)
        return self._on_sphere(z)

    def _objective_features(self) -> contextlib.AbstractContextManager[None]:
        """Raw encoder outputs for an objective that wants them (``Objective.unit_features`` False)."""
        return contextlib.nullcontext() if self.raw_output is None else self.raw_output.active()

    def _on_sphere(self, z: torch.Tensor) -> torch.Tensor:
        if self.raw_output is not None:
            return z.float()
        if self.config.precision == "fp32":
            return z
        # A bf16 unit vector's norm is only accurate to ~4e-3; the losses want float32 on the sphere.
        return F.normalize(z.float(), dim=1)

    def _divergence_message(self, epoch: int, step: int) -> str:
        terms = ", ".join(f"{k}={v:.4g}" for k, v in self.objective.last_terms.items())
        kept = (
            f"the last good checkpoint (end of epoch {self.epoch}) is kept at {self.out / 'checkpoint.pt'}"
            if self.epoch > 0
            else "no checkpoint was written yet"
        )
        return (
            f"the loss became NaN/inf at epoch {epoch}, step {step} ({terms}); {kept}. "
            f"Try a lower `lr`, fp32 precision, or a different objective weighting."
        )

    def _end_epoch(self, record: dict) -> None:
        rng_states = self._rng_states()
        if self.context.is_main:
            improved = record.get("knn_acc", -math.inf) > self.best_knn
            if improved:
                self.best_knn, self.best_epoch = record["knn_acc"], record["epoch"]
            self.metrics.append(record)
            self.folder.write_epoch(self.state_dict(rng_states), record, improved)
            if self.config.progress:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch",))
                tqdm.write(f"epoch {record['epoch']}/{self.config.epochs}: {shown}")
        barrier()

    # ------------------------------------------------------------------ monitoring

    def validate(self) -> dict[str, float]:
        """The held-out metrics of the model as it is now (:func:`.monitor.held_out_metrics`); rank 0 only."""
        if not self.context.is_main:
            return {}
        return held_out_metrics(
            self.model,
            self.data,
            self.eval_layer,
            self.eval_transform,
            self.augmentation,
            self.config.knn_k,
            self.device,
        )
