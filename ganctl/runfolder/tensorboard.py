"""TensorBoard event files for a run: ``ganctl train --tensorboard`` writes them under ``RUN/tb/``.

``metrics.jsonl`` stays the record of a run; this is a second view of the same records, for
watching a training live with ``tensorboard --logdir runs/``. Every numeric statistic of a
record becomes a scalar under a stable tag (``loss/g``, ``acc/d_real``, ``eval/fid``...), the
sample grids become images, health events text, and the resolved configuration text and
hyper-parameters.

On resume the sink is opened with ``purge_step`` = the first step to be written again
(checkpoint step + 1): TensorBoard then hides what the interrupted session wrote from that
step on, as ``metrics.jsonl`` is truncated to the checkpoint, so every tag's steps stay unique.

The ``tensorboard`` package is optional (``pip install 'ganctl[tensorboard]'``) and imported
only here, only when a sink is made.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ganctl.errors import GanctlError
from ganctl.runfolder.layout import TENSORBOARD

FOLDER = TENSORBOARD
MISSING = "--tensorboard needs the tensorboard package: pip install 'ganctl[tensorboard]'"

# metrics.jsonl keys → TensorBoard tags; a regulariser's statistic takes the tag its plugin
# gives it (``Regularizer.tensorboard_tag``), any other key is placed by ``tag_for``'s rules
TAGS = {
    "d_loss_real": "loss/d_real",
    "d_loss_fake": "loss/d_fake",
    "d_loss": "loss/d",
    "g_loss": "loss/g",
    "d_acc_real": "acc/d_real",
    "d_acc_fake": "acc/d_fake",
    "fid": "eval/fid",
    "kid_mean": "eval/kid",
    "kid_std": "eval/kid_std",
    "eval_seconds": "eval/seconds",
    "images_per_s": "speed/images_per_s",
    "lr_g": "lr/g",
    "lr_d": "lr/d",
}
NOT_SCALARS = {"step", "epoch", "kimg"}  # the x axis, not a curve
HPARAM_METRICS = ("eval/fid", "eval/kid", "loss/g", "loss/d_real", "loss/d_fake")


def require_tensorboard() -> None:
    """Refuse ``--tensorboard`` in one sentence, before the run folder is made, when the package is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise GanctlError(MISSING)


def tag_for(key: str) -> str:
    """The TensorBoard tag of a metrics key: the fixed names first, then a regulariser's own
    tag, then by the key's shape."""
    if key in TAGS:
        return TAGS[key]
    from ganctl.registry import REGULARIZERS

    if key in REGULARIZERS:  # its statistic, reported under the registered name
        return REGULARIZERS.get(key).obj.tensorboard_tag
    if key.startswith("lr_"):
        return f"lr/{key[3:]}"
    if key.endswith("_loss") or key.startswith("loss_"):
        return f"loss/{key.removesuffix('_loss').removeprefix('loss_')}"
    if key.startswith("acc_") or key.startswith("d_acc_"):
        return f"acc/{key.removeprefix('d_acc_').removeprefix('acc_')}"
    return f"train/{key}"  # augment_p, grad norms...


class TensorBoardSink:
    """Writes a run's records to ``run_dir/tb/`` as TensorBoard events.

    ``purge_step``: None for a new run; on resume, the first step that will be written again
    (the checkpoint's step + 1). ``config``: the resolved configuration, as ``config.json``.
    """

    def __init__(self, run_dir: Path, *, purge_step: int | None, config: dict[str, Any]) -> None:
        require_tensorboard()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # tensorboard present but unusable (a protobuf clash, say)
            raise GanctlError(f"{MISSING} ({exc})") from None
        self.log_dir = Path(run_dir) / FOLDER
        fresh = not any(self.log_dir.glob("events.out.tfevents.*"))
        _quiet_writer_thread()
        with self._writing():
            # flush_secs: a live `tensorboard` sees new points within seconds, not the default two minutes
            self.writer = SummaryWriter(str(self.log_dir), purge_step=purge_step, flush_secs=10)
            self._config(config, step=0 if purge_step is None else purge_step, fresh=fresh)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed write of the event files (a full disk) as one sentence; the run's own files are intact."""
        try:
            yield
        except OSError as exc:
            raise GanctlError(
                f"could not write the TensorBoard events in {self.log_dir}: {exc.strerror or exc}; "
                "the checkpoints are intact: free some space, then train --resume"
            ) from None

    # --- what the training loop calls -----------------------------------------------------
    def record(self, record: dict[str, Any]) -> None:
        """Any ``metrics.jsonl`` record: a health event as text, anything else as scalars."""
        with self._writing():
            if "event" in record:
                self.event(record["step"], str(record["event"]), str(record.get("message", "")))
            else:
                self.scalars(record)

    def scalars(self, record: dict[str, Any]) -> None:
        """Every numeric key of a training or evaluation record except step and epoch, at the record's step."""
        step = int(record["step"])
        for key, value in record.items():
            if key in NOT_SCALARS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue  # "best": true and the evaluation's protocol are no curves
            self.writer.add_scalar(tag_for(key), float(value), step)

    def image(self, tag: str, step: int, image: Any) -> None:
        """A uint8 image, height × width (× channels) numpy array or PIL image: a sample grid."""
        import numpy as np

        if hasattr(image, "mode") and image.mode not in ("L", "RGB"):  # a PIL image with alpha or a palette
            image = image.convert("RGB")
        array = np.asarray(image)
        if array.dtype != np.uint8:
            raise ValueError(f"TensorBoardSink.image takes uint8 pixels, not {array.dtype}")
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        with self._writing():
            self.writer.add_image(tag, array, step, dataformats="HW" if array.ndim == 2 else "HWC")

    def event(self, step: int, kind: str, message: str) -> None:
        """A health event (d_collapse, low_diversity...) as text under ``events/KIND``."""
        self.writer.add_text(f"events/{kind}", message, step)

    def flush(self) -> None:
        with self._writing():
            self.writer.flush()

    def close(self) -> None:
        with self._writing():
            self.writer.close()

    def __enter__(self) -> TensorBoardSink:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- the configuration ----------------------------------------------------------------
    def _config(self, config: dict[str, Any], step: int, fresh: bool) -> None:
        """The configuration as a text table (again at the resume step, which may change --epochs);
        the recipe as hyper-parameters once, in a new log folder."""
        title = "configuration" if not step else f"configuration, resumed at step {step}"
        rows = "\n".join(f"| {k} | `{_text(v)}` |" for k, v in _flat(config).items())
        self.writer.add_text("config", f"**{title}**\n\n| setting | value |\n| --- | --- |\n{rows}", step)
        if fresh:
            from torch.utils.tensorboard.summary import hparams

            values = {k: v if isinstance(v, (int, float, str, bool)) and not _bad(v) else _text(v) for k, v in _flat(config).items()}
            for summary in hparams(values, {tag: 0.0 for tag in HPARAM_METRICS}):
                self.writer.file_writer.add_summary(summary)


def _quiet_writer_thread() -> None:
    """TensorBoard writes from a thread of its own, which re-raises a failed write (a full disk) and
    so prints a traceback; the same error reaches the next write of the main thread, where it becomes
    one sentence. Only that thread's exceptions are silenced; every other thread's are printed."""
    try:
        from tensorboard.summary.writer.event_file_writer import _AsyncWriterThread
    except ImportError:  # another tensorboard: its thread's traceback may show, the error stays one line
        return
    previous = threading.excepthook
    if getattr(previous, "ganctl_quiet_tensorboard", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if not (isinstance(args.thread, _AsyncWriterThread) and issubclass(args.exc_type, OSError)):
            previous(args)

    hook.ganctl_quiet_tensorboard = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """``{"recipe": {"loss": "bce"}, "seed": 0}`` → ``{"recipe.loss": "bce", "seed": 0}``."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in _flat(value).items()})
        else:
            flat[key] = value
    return flat


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _bad(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)
