"""Checkpoint keeping and fallback, and the footprint of checkpoints and logs at the CS20 size."""

import glob
import json
import math
import os

import pytest
import tensorflow.compat.v1 as tf

from conftest import run_main
from test_run import CHECKPOINT_DIR, LOG_DIR, events, scalar_series


def checkpoint_names():
    state = tf.train.get_checkpoint_state(CHECKPOINT_DIR)
    return [os.path.basename(path) for path in state.all_model_checkpoint_paths]


def test_keep_limits_the_checkpoints_across_resumes(workdir, capsys, base_args):
    code, _, err = run_main([*base_args, "--iterations", "4", "--save-every", "1", "--keep", "2"], capsys)
    assert code == 0, err
    assert checkpoint_names() == ["ckpt-3", "ckpt-4"]
    code, _, err = run_main([*base_args, "--iterations", "6", "--save-every", "1", "--keep", "2"], capsys)
    assert code == 0, err
    assert checkpoint_names() == ["ckpt-5", "ckpt-6"]
    assert sorted(glob.glob(os.path.join(CHECKPOINT_DIR, "ckpt-*.index"))) == \
        [os.path.join(CHECKPOINT_DIR, f"ckpt-{step}.index") for step in (5, 6)]


def test_an_unreadable_latest_checkpoint_falls_back_to_the_one_before(workdir, capsys, base_args):
    code, _, err = run_main([*base_args, "--iterations", "6", "--save-every", "3"], capsys)
    assert code == 0, err
    data = glob.glob(os.path.join(CHECKPOINT_DIR, "ckpt-6.data-*"))[0]
    with open(data, "r+b") as file:  # as if the disk had lost its end
        file.truncate(100)
    code, out, err = run_main([*base_args, "--iterations", "7", "--save-every", "3"], capsys)
    assert code == 0, err
    assert "ckpt-6 cannot be read" in err and "trying the one before" in err
    assert "Resuming from step 3" in out
    assert [step for step, _ in scalar_series(LOG_DIR, "total_loss")] == [1, 7]


def test_no_readable_checkpoint_is_refused_and_restart_recovers(workdir, capsys, base_args):
    code, _, err = run_main([*base_args, "--iterations", "2"], capsys)
    assert code == 0, err
    for data in glob.glob(os.path.join(CHECKPOINT_DIR, "ckpt-*.data-*")):
        open(data, "wb").close()
    code, _, err = run_main([*base_args, "--iterations", "3"], capsys)
    assert code == 2 and "no checkpoint" in err and "--restart" in err
    code, _, err = run_main([*base_args, "--iterations", "3", "--restart"], capsys)
    assert code == 0, err
    assert checkpoint_names() == ["ckpt-3"]


def test_a_foreign_checkpoint_without_a_run_record_is_refused(workdir, capsys, base_args):
    code, _, err = run_main([*base_args, "--iterations", "1"], capsys)
    assert code == 0, err
    os.remove(os.path.join(CHECKPOINT_DIR, "run.json"))
    code, _, err = run_main([*base_args, "--iterations", "2"], capsys)
    assert code == 2 and "run.json" in err and "--restart" in err


@pytest.mark.slow  # a whole run of several seconds: out of the quick subset
def test_footprint_at_333x250(workdir, capsys, vgg19_mat, images):
    """One checkpoint at most 4 MB; the TensorBoard log of a whole 300-step run at most 5 MB.

    The run here is 4 steps with every event kind; the whole run's log is its graph and configuration
    events plus 32 loss events (every 10 steps, step 1) and 15 image events (every 20 steps), by their
    measured sizes.
    """
    code, _, err = run_main(["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"],
                             "--iterations", "4", "--save-every", "2", "--log-every", "2"], capsys)
    assert code == 0, err
    checkpoint_bytes = sum(os.path.getsize(path) for path in glob.glob(os.path.join(CHECKPOINT_DIR, "ckpt-4.*")))
    assert 3 * (333 * 250 * 3 * 4) <= checkpoint_bytes <= 4_000_000  # the image and Adam's two moments

    sizes = {"loss": [], "image": [], "once": 0}
    for path in glob.glob(os.path.join(LOG_DIR, "events.out.tfevents.*")):
        for event in tf.train.summary_iterator(path):
            size = len(event.SerializeToString()) + 16  # TFRecord framing: length, two CRCs
            tags = [value.tag for value in event.summary.value]
            if "total_loss" in tags:
                sizes["loss"].append(size)
            elif any(tag.startswith("generated") for tag in tags):
                sizes["image"].append(size)
            else:
                sizes["once"] += size  # file version, graph, configuration
    whole_run = sizes["once"] + 32 * max(sizes["loss"]) + 15 * max(sizes["image"])
    assert sizes["once"] < 1_000_000  # the graph without its weights' values
    assert whole_run <= 5_000_000, whole_run
    assert any(tag == "configuration" for _, tag, _ in events(LOG_DIR))


@pytest.mark.parametrize("record", ["{not json", '{"loss": NaN, "step": 2}', '{"loss": "low", "step": 2}', "[]"])
def test_a_best_record_that_cannot_be_trusted_is_said_and_sought_afresh(workdir, capsys, base_args, record):
    args = [*base_args, "--save-every", "1", "--keep-best"]
    code, _, err = run_main([*args, "--iterations", "2"], capsys)
    assert code == 0, err
    best = os.path.join(CHECKPOINT_DIR, "best.json")
    open(best, "w").write(record)
    code, out, err = run_main([*args, "--iterations", "3"], capsys)
    assert code == 0 and "Resuming from step 2" in out, err
    assert f"warning: {best} cannot be trusted" in err and "sought afresh" in err
    written = json.load(open(best))
    assert math.isfinite(written["loss"]) and written["step"] == 3
