"""The TensorBoard sink: stable tags, images, events, the configuration, and purging on resume."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from ganctl.runfolder import tensorboard as tensorboard_sink
from ganctl.errors import GanctlError
from ganctl.runfolder.tensorboard import TensorBoardSink, require_tensorboard, tag_for
from tests.runfolders import eval_record, train_record

pytest.importorskip("tensorboard", reason="the sink writes through tensorboard (pip install 'ganctl[tensorboard]')")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

CONFIG = {"ganctl_version": "0.1.0", "arch": "mnist-dcgan", "recipe": {"loss": "bce", "epochs": 5, "pixel_range": [0.0, 1.0]},
          "seed": 0, "max_steps": None}  # fmt: skip


def read_back(log_dir) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def test_tags_are_stable_and_every_other_key_has_a_place():
    assert [tag_for(k) for k in ("d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake")] == [
        "loss/d_real", "loss/d_fake", "loss/g", "acc/d_real", "acc/d_fake"]  # fmt: skip
    assert [tag_for(k) for k in ("fid", "kid_mean", "images_per_s", "lr_g", "lr_d")] == [
        "eval/fid", "eval/kid", "speed/images_per_s", "lr/g", "lr/d"]  # fmt: skip
    assert tag_for("r1") == "reg/r1" and tag_for("gp") == "reg/gp" and tag_for("augment_p") == "train/augment_p" and tag_for("gp_loss") == "loss/gp"


def test_resume_purges_what_the_interrupted_session_wrote_after_the_checkpoint(tmp_path):
    with TensorBoardSink(tmp_path, purge_step=None, config=CONFIG) as sink:
        for step in range(1, 11):
            sink.record(train_record(step, 5, g_loss=100.0 + step))  # values the resume must replace
    # interrupted after step 10; the checkpoint is at step 5: steps 6.. are trained again
    with TensorBoardSink(tmp_path, purge_step=6, config=CONFIG) as sink:
        for step in range(6, 13):
            sink.record(train_record(step, 5, g_loss=float(step)))
    events = read_back(tmp_path / "tb")
    g = events.Scalars("loss/g")
    assert [e.step for e in g] == list(range(1, 13))  # unique and increasing
    assert [e.value for e in g] == [101.0 + s for s in range(5)] + [float(s) for s in range(6, 13)]
    assert {"loss/d_real", "loss/d_fake", "acc/d_real", "acc/d_fake", "speed/images_per_s"} <= set(events.Tags()["scalars"])
    assert "epoch" not in str(events.Tags()["scalars"])
    configs = events.Tensors("config/text_summary")
    assert [c.step for c in configs] == [0, 6] and b"resumed at step 6" in configs[1].tensor_proto.string_val[0]


def test_evaluation_records_images_events_and_the_configuration(tmp_path):
    grid = np.random.default_rng(0).integers(0, 256, (62, 62, 3), dtype=np.uint8)
    with TensorBoardSink(tmp_path, purge_step=None, config=CONFIG) as sink:
        sink.record(train_record(4, 4, r1=0.25))
        sink.record(eval_record(4, 4, 31.5, True))  # "best": true and the protocol dict are skipped
        sink.image("samples", 4, grid)
        sink.image("samples_gray", 4, Image.fromarray(grid[:, :, 0]))
        sink.record({"step": 4, "event": "d_collapse", "message": "discriminator loss has stayed below 0.05"})
    events = read_back(tmp_path / "tb")
    scalars = set(events.Tags()["scalars"])
    assert {"eval/fid", "eval/kid", "eval/kid_std", "eval/seconds", "reg/r1"} <= scalars
    assert not any("best" in t or "protocol" in t for t in scalars)
    assert events.Scalars("eval/fid")[0].value == pytest.approx(31.5)
    (image,) = events.Images("samples")
    assert (image.step, image.width, image.height) == (4, 62, 62)
    decoded = np.asarray(Image.open(__import__("io").BytesIO(image.encoded_image_string)).convert("RGB"))
    assert np.array_equal(decoded, grid)
    assert events.Images("samples_gray")[0].width == 62
    texts = {t: events.Tensors(t) for t in events.Tags()["tensors"]}
    (event,) = texts["events/d_collapse/text_summary"]
    assert event.step == 4 and b"stayed below 0.05" in event.tensor_proto.string_val[0]
    (config,) = texts["config/text_summary"]
    assert b"recipe.loss" in config.tensor_proto.string_val[0] and b"mnist-dcgan" in config.tensor_proto.string_val[0]
    # the recipe as hyper-parameters, in the run's own folder (not a sub-run as add_hparams makes)
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(events.PluginTagToContent("hparams"))
    assert b"recipe.loss" in events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    assert [p.name for p in (tmp_path / "tb").iterdir() if p.is_dir()] == []


def test_a_pil_image_with_alpha_and_a_wrong_dtype(tmp_path):
    with TensorBoardSink(tmp_path, purge_step=None, config=CONFIG) as sink:
        sink.image("rgba", 1, Image.new("RGBA", (8, 8), (255, 0, 0, 128)))
        with pytest.raises(ValueError, match="uint8"):
            sink.image("float", 1, np.zeros((8, 8, 3), dtype=np.float32))
    assert read_back(tmp_path / "tb").Images("rgba")[0].width == 8


def test_without_tensorboard_the_option_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(GanctlError, match=r"pip install 'ganctl\[tensorboard\]'"):
        require_tensorboard()
    with pytest.raises(GanctlError, match="--tensorboard needs the tensorboard package"):
        TensorBoardSink(tmp_path, purge_step=None, config=CONFIG)
    assert not (tmp_path / tensorboard_sink.FOLDER).exists()


def test_train_with_tensorboard_then_resume_writes_each_step_once(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from typer.testing import CliRunner

    from ganctl.cli import app

    run = tmp_path / "run"
    args = ["--arch", "mnist-dcgan", "--dataset", "synthetic", "--limit", "64", "--batch-size", "16", "--quiet",
            "--log-every", "2", "--sample-every", "1", "--checkpoint-every", "3", "--tensorboard"]
    assert CliRunner().invoke(app, ["train", *args, "--max-steps", "5", "--out", str(run)]).exit_code == 0
    result = CliRunner().invoke(app, ["train", "--resume", "--out", str(run), "--max-steps", "10", "--quiet"])
    assert result.exit_code == 0, result.stderr
    events = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    steps = [e.step for e in events.Scalars("loss/g")]
    assert steps == [2, 4, 5, 6, 8, 10]
    assert "samples" in events.Tags()["images"]
