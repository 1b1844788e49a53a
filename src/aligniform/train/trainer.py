"""The training loop: two views → encoder → objective, with exact resume and per-epoch evaluation."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import fields
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
    broadcast_object,
    convert_sync_batchnorm,
    global_loss,
    init_distributed,
    seed_worker,
    shard_indices,
    wrap_ddp,
)
from ..evaluate import embed_view_pairs, extract_features, knn_accuracy, recomputed_batchnorm
from ..metrics import alignment, uniformity
from ..models import resolve_eval_layer
from ..objective import Objective
from .checkpoint import (
    CheckpointError,
    ModelInfo,
    load_checkpoint,
    read_model_info,
    rng_state,
    save_atomic,
    set_rng_state,
)
from .grad_cache import grad_cache_backward, grad_cache_pairs_backward
from .moco import FeatureQueue, MomentumEncoder
from .run_folder import (
    RunFolderError,
    RunLock,
    check_folder,
    history_event,
    remove_run_files,
    remove_stale_temporaries,
    resume_changes,
    write_history,
    write_text_atomic,
    writing,
)
from .run_log import RunLog, metrics_line, recover_metrics
from .schedule import build_scheduler, warmup_factor

with requires_extra("train"):
    from tqdm.auto import tqdm

VALIDATION_SEED = 12345  # fixed views for the held-out metrics, so epochs are comparable


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
        self._check_batch_size()
        self.epoch = 0  # epochs completed
        self.best_knn = -math.inf
        self.best_epoch = 0  # the epoch best.pt holds (0: none yet)
        self.metrics: list[dict] = []  # every epoch's record, also kept in the checkpoint
        self.history: list[dict] = []  # starts and resumes with the options they changed
        self.log: RunLog | None = None
        self.lock: RunLock | None = None

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

    def _check_batch_size(self) -> None:
        """The global batch splits evenly over the processes and fits in the training set."""
        world = self.context.world_size
        if self.config.batch_size % world:
            raise ConfigError(
                f"batch_size {self.config.batch_size} must be divisible by the number of processes ({world})"
            )
        if self.config.batch_size > len(self.data.train):
            raise ConfigError(
                f"batch_size {self.config.batch_size} is larger than the training set ({len(self.data.train)} images)"
            )

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
        """Continue from a checkpoint's state (see :meth:`state_dict`)."""
        self._check_processes(state)
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
        self._follow_schedule()

    def _check_processes(self, state: dict) -> None:
        if len(state["rng"]) != self.context.world_size:
            raise ValueError(
                f"the checkpoint was written by {len(state['rng'])} process(es); resume it with the same number "
                f"of processes (now {self.context.world_size}) so every random stream continues exactly"
            )

    def _follow_schedule(self) -> None:
        """Set the learning rate the schedule gives at the restored epoch.

        A cosine schedule depends on ``epochs``; when ``--resume`` extends the
        run, the rest of it follows the new schedule. (For an unchanged
        schedule this recomputes the very value the last step set.)
        """
        if isinstance(self.scheduler, torch.optim.lr_scheduler.LambdaLR):
            epoch = self.scheduler.last_epoch
            for group, rule, base in zip(
                self.optimizer.param_groups, self.scheduler.lr_lambdas, self.scheduler.base_lrs, strict=True
            ):
                group["lr"] = base * rule(epoch)

    # ------------------------------------------------------------------ training

    def fit(self, resume: bool = False, overwrite: bool = False) -> None:
        """Train for ``config.epochs`` epochs in the run folder ``config.out``.

        A folder that holds a run is used only on purpose: ``resume`` continues
        it from its checkpoint (changing only the options
        :data:`~aligniform.train.run_folder.RESUMABLE_OPTIONS`, each recorded
        in the run's history), ``overwrite`` replaces it. Every check runs
        before anything is written, so a refused call leaves the folder as it
        was. The folder is then locked against other processes until
        :meth:`close` (or the end of the process).

        Raises:
            RunFolderError: the folder cannot be used as asked, is locked by another process, or a write failed
                (the message names the file and what to do).
            CheckpointError: ``resume`` and the checkpoint is missing or unreadable.
        """
        restored = self._on_main_first(lambda: self._open_folder(resume, overwrite))
        if restored is None and resume and not self.context.is_main and self._resumes_checkpoint:
            # On the CPU: RNG states must stay CPU byte tensors; load_state_dict copies the rest to the device.
            restored = load_checkpoint(self.out / "checkpoint.pt", map_location="cpu")
        if restored is not None:
            self.load_state_dict(restored)
        try:
            while self.epoch < self.config.epochs:
                self._train_epoch()
        finally:
            if self.log is not None:
                self.log.close()
                self.log = None

    def close(self) -> None:
        """Release the run folder's lock (:func:`aligniform.train.run` calls this after writing the results)."""
        if self.log is not None:
            self.log.close()
            self.log = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _on_main_first(self, prepare):
        """Run ``prepare`` on rank 0 only; under torchrun the other ranks learn whether it failed (and stop too)."""
        outcome, error = None, None
        if self.context.is_main:
            try:
                outcome = prepare()
            except Exception as caught:  # re-raised below, after the other ranks were told
                error = caught
        if self.context.is_distributed:
            message, self._resumes_checkpoint = broadcast_object(
                (None if error is None else str(error), outcome is not None)
            )
            if error is None and message is not None:
                raise RunFolderError(f"rank 0 could not prepare the run folder: {message}")
        if error is not None:
            raise error
        return outcome

    _resumes_checkpoint = False

    def _open_folder(self, resume: bool, overwrite: bool) -> dict | None:
        """Check, lock and prepare the run folder; return the checkpoint state to continue from (None: epoch 0)."""
        out = check_folder(self.config.out, resume, overwrite)
        checkpoint = out / "checkpoint.pt"
        state, changes = self._resume_state(out) if resume else (None, {})
        seen = _identity(checkpoint)
        # Everything is checked: from here on the folder is written.
        with writing(out):
            out.mkdir(parents=True, exist_ok=True)
        self.lock = (self.lock or RunLock(out)).acquire()  # a second fit() keeps the lock it holds
        try:
            check_folder(out, resume, overwrite)  # another process may have written it before we got the lock
            if resume and _identity(checkpoint) != seen:
                state, changes = self._resume_state(out)
            with writing(out):
                remove_stale_temporaries(out)
                replaced = remove_run_files(out) if overwrite else []
            self._start_record(out, state, changes, replaced)
        except BaseException:
            self.lock.release()
            self.lock = None
            raise
        return state

    def _resume_state(self, out: Path) -> tuple[dict | None, dict]:
        """The checkpoint to continue from (None when no epoch finished) and the options this call changes.

        Raises:
            RunFolderError: an option may not change on resume, or the checkpoint is of another model.
        """
        checkpoint = out / "checkpoint.pt"
        if not checkpoint.is_file():  # started, but no epoch finished: config.yaml is all there is
            return None, resume_changes(TrainConfig.from_yaml(out / "config.yaml"), self.config, 0)
        state = load_checkpoint(checkpoint, map_location="cpu")
        try:
            saved = TrainConfig.from_dict(state["config"])
        except (KeyError, ConfigError) as error:
            raise CheckpointError(f"checkpoint {checkpoint} holds no usable configuration ({error})") from None
        changes = resume_changes(saved, self.config, int(state["epoch"]))
        self._check_processes(state)
        if "model_info" in state:
            stored, built = read_model_info(state), self.model_info
            differing = [
                f"{name} {getattr(stored, name)!r} -> {getattr(built, name)!r}"
                for name in (field.name for field in fields(ModelInfo))
                if getattr(stored, name) != getattr(built, name)
            ]
            if differing:
                raise RunFolderError(
                    f"checkpoint {checkpoint} holds another model than this command builds ({', '.join(differing)}); "
                    f"resume with the data the run was trained on"
                )
        return state, changes

    def _start_record(self, out: Path, state: dict | None, changes: dict, replaced: list[str]) -> None:
        """Write the run's config and history and bring the files behind the checkpoint up to it (rank 0, locked).

        config.yaml comes first: a folder with anything of a run in it can then be resumed.
        """
        metrics = out / "metrics.jsonl"
        if state is None:
            self.metrics, self.history = [], [history_event("start", 0, changes)]
            if replaced:
                self.history[0]["replaced"] = replaced
            repairs: list[str] = []
        else:
            done = int(state["epoch"])
            if "metrics" in state:
                self.metrics = list(state["metrics"])
            else:  # a checkpoint written before the metrics were kept in it
                with writing(metrics):
                    self.metrics = recover_metrics(metrics, done)
            event = history_event("resume", done, changes)
            repairs = [
                name
                for name, stale in (
                    ("metrics.jsonl", _metrics_stale(metrics, self.metrics)),
                    ("best.pt", _best_stale(out, state)),
                )
                if stale
            ]
            if repairs:
                event["repaired"] = repairs
            self.history = [*state.get("history", []), event]
            # The resume and what it changed belong to the run from now on, even before an epoch ends.
            state.update(config=self.config.to_dict(), metrics=self.metrics, history=self.history)
            with writing(out / "checkpoint.pt"):
                save_atomic(state, out / "checkpoint.pt")
        with writing(out / "config.yaml"):
            write_text_atomic(out / "config.yaml", self.config.to_yaml(), point="config")
        with writing(out / "history.yaml"):
            write_history(out, self.history)
        with writing(out / "tensorboard"):
            self.log = RunLog(out)
        with writing(metrics):
            self.log.rewrite(self.metrics)
        if "best.pt" in repairs:
            with writing(out / "best.pt"):
                save_atomic(state, out / "best.pt")

    def _train_epoch(self) -> None:
        epoch = self.epoch + 1
        started = time.perf_counter()
        self.network.train()
        indices = shard_indices(
            len(self.data.train), self.context.rank, self.context.world_size, self.config.seed, epoch
        )
        steps = len(indices) // self.local_batch_size  # >= 1: the batch fits the training set (_check_batch_size)
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
            self._warm_up(scheduled, warmup_factor((epoch - 1) * steps + step + 1, self.config.warmup_epochs * steps))
            terms = self._train_step(images.to(self.device, non_blocking=True), epoch, step + 1, labels)
            for key, value in terms.items():
                totals[key] = totals.get(key, 0.0) + value
            bar.set_postfix({k: f"{v:.3f}" for k, v in terms.items()})
        lr = self.optimizer.param_groups[0]["lr"]
        self._warm_up(scheduled, 1.0)  # the schedule steps from its own value (a step schedule multiplies the lr)
        self.scheduler.step()
        self.epoch = epoch
        record = {"epoch": epoch, **{k: v / steps for k, v in totals.items()}, "lr": lr}
        record.update(self.objective.learned_values())  # e.g. contrastive_tau, at the end of the epoch
        record.update(self.validate())
        record["seconds"] = time.perf_counter() - started
        self._end_epoch(record)

    def _warm_up(self, scheduled: list[float], factor: float) -> None:
        """Set each group's lr to its scheduled value times the warm-up ``factor`` (no-op without warm-up).

        The factor comes from the global step, derived from the epoch, so a resumed run continues its warm-up.
        """
        if self.config.warmup_epochs > 0:
            for group, lr in zip(self.optimizer.param_groups, scheduled, strict=True):
                group["lr"] = lr * factor

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

        self.optimizer.zero_grad(set_to_none=True)
        chunk = self.config.grad_cache
        if chunk is None:
            # MoCo: queries and keys; otherwise one pass over both views, as the authors do (BatchNorm sees both).
            x, y = (self._embed(view1), self._keys(view2)) if moco else self._embed(torch.cat([view1, view2])).chunk(2)
            loss = batch_loss(x, y)
            loss.backward()
        elif moco:  # the keys need no graph: the key encoder embeds the whole batch
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
        """The trained encoder's embeddings of ``images`` (with gradient), float32 on the sphere."""
        with self._autocast():
            z = self.network(images)
        return self._on_sphere(z)

    def _keys(self, images: torch.Tensor) -> torch.Tensor:
        """The MoCo key encoder's embeddings (no gradient; shuffle-BN, see train/moco.py), float32 on the sphere."""
        with self._autocast():
            z = self.key_encoder(images)
        return self._on_sphere(z)

    def _on_sphere(self, z: torch.Tensor) -> torch.Tensor:
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
            f"Try a lower --lr, fp32 precision, or a different objective weighting."
        )

    def _end_epoch(self, record: dict) -> None:
        rng_states = self._rng_states()
        if self.context.is_main:
            improved = record.get("knn_acc", -math.inf) > self.best_knn
            if improved:
                self.best_knn, self.best_epoch = record["knn_acc"], record["epoch"]
            self.metrics.append(record)
            state = self.state_dict(rng_states)
            # The checkpoint, which holds every epoch's metrics, is written first: best.pt and metrics.jsonl are
            # never ahead of it, and --resume brings them up to it whatever moment a crash hit.
            with writing(self.out / "checkpoint.pt"):
                save_atomic(state, self.out / "checkpoint.pt")
            if improved:
                with writing(self.out / "best.pt"):
                    save_atomic(state, self.out / "best.pt")
            with writing(self.log.path):
                self.log.write(record)
            if self.config.progress:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch",))
                tqdm.write(f"epoch {record['epoch']}/{self.config.epochs}: {shown}")
        barrier()

    # ------------------------------------------------------------------ monitoring

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Held-out metrics: 5-NN accuracy of val against bank; alignment of val pairs, uniformity of val images.

        As in the final evaluation, BatchNorm uses its inputs' exact statistics over the (clean) bank images
        for these measurements (:func:`~aligniform.evaluate.recomputed_batchnorm`); the running averages over
        the last augmented batches made the held-out uniformity jump by up to 0.8 between epochs.
        """
        if not self.context.is_main:
            return {}
        layer = self.eval_layer  # resolved (and checked) when the trainer was built
        model, transform, device = self.model, self.eval_transform, self.device
        with recomputed_batchnorm(model, self.data.bank.images, transform, device=device):
            bank = extract_features(model, self.data.bank.images, transform, [layer], device=device)
            layers = list(dict.fromkeys([layer, "output"]))
            val = extract_features(model, self.data.val.images, transform, layers, device=device)
            # Fixed views (same every epoch, so epochs compare); the training RNG stream is left as it was.
            x, y = embed_view_pairs(model, self.data.val.images, self.augmentation, seed=VALIDATION_SEED, device=device)
        knn = knn_accuracy(bank[layer], self.data.bank.labels, val[layer], self.data.val.labels, k=self.config.knn_k)
        return {
            "val_alignment": alignment(x, y),
            "val_uniformity": uniformity(val["output"], max_pairs=500_000),  # the images, as the final evaluation
            "knn_acc": knn,
        }


def _identity(path: Path) -> tuple[int, int, int] | None:
    """Which file ``path`` is (inode, size, modification time): None when missing."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _metrics_stale(path: Path, records: list[dict]) -> bool:
    """Whether metrics.jsonl differs from the checkpoint's records (a line lost or torn by a crash)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return bool(records) or path.exists()
    return text != "".join(metrics_line(record) for record in records)


def _best_stale(out: Path, state: dict) -> bool:
    """Whether best.pt lags the checkpoint: it is written just after it, so a crash can leave the previous one."""
    best_epoch = state.get("best_epoch")
    if not best_epoch or best_epoch != state["epoch"]:
        return False
    try:
        return load_checkpoint(out / "best.pt")["epoch"] != best_epoch
    except CheckpointError:
        return True
