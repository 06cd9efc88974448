"""--optimizer lbfgs: scipy's L-BFGS-B driving the Session, one evaluation per step."""

import os
import signal
import time

import pytest
import tensorflow.compat.v1 as tf

from conftest import run_main, start_script
from test_run import CHECKPOINT_DIR, LOG_DIR, scalar_series, wait_for


def final_loss():
    return scalar_series(LOG_DIR, "total_loss")[-1]


def test_lbfgs_beats_adam_in_as_many_steps(tmp_path, monkeypatch, capsys, base_args):
    losses = {}
    for optimizer in ("adam", "lbfgs"):
        folder = tmp_path / optimizer
        folder.mkdir()
        monkeypatch.chdir(folder)
        code, out, err = run_main([*base_args, "--optimizer", optimizer, "--iterations", "20", "--log-every", "5"],
                                  capsys)
        assert code == 0, err
        steps = [step for step, _ in scalar_series(LOG_DIR, "total_loss")]
        assert steps == [1, 5, 10, 15, 20]  # one step, one evaluation: the same cadence as Adam
        losses[optimizer] = final_loss()[1]
    assert losses["lbfgs"] < 0.5 * losses["adam"]


def test_lbfgs_resumes_from_the_saved_image_and_keeps_its_own_record(workdir, capsys, base_args):
    args = [*base_args, "--optimizer", "lbfgs", "--save-every", "5", "--log-every", "5"]
    code, _, err = run_main([*args, "--iterations", "10"], capsys)
    assert code == 0, err
    loss_at_10 = final_loss()[1]
    code, out, err = run_main([*args, "--iterations", "15", "--lr", "7"], capsys)  # Adam's rate: no matter
    assert code == 0 and "Resuming from step 10" in out, err
    assert [step for step, _ in scalar_series(LOG_DIR, "total_loss")] == [1, 5, 10, 15]
    assert final_loss()[1] < loss_at_10
    assert os.path.basename(tf.train.latest_checkpoint(CHECKPOINT_DIR)) == "ckpt-15"

    code, _, err = run_main([*base_args, "--iterations", "20"], capsys)  # Adam now: another problem
    assert code == 2 and "optimizer: lbfgs then, adam now" in err


def test_lbfgs_stops_cleanly_on_sigterm(tmp_path, vgg19_mat, images):
    args = ["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"], "--width", "40",
            "--height", "32", "--optimizer", "lbfgs", "--iterations", "100000", "--save-every", "1000"]
    process = start_script(args, cwd=tmp_path)
    wait_for(lambda: (tmp_path / LOG_DIR).exists() and os.listdir(tmp_path / LOG_DIR) or process.poll() is not None,
             120, "the first step")
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    if "converged" in out:
        pytest.skip("L-BFGS converged before the signal")
    assert process.returncode == 143, err
    step = int(out.split("at step ")[1].split(":")[0])
    assert os.path.basename(tf.train.latest_checkpoint(str(tmp_path / CHECKPOINT_DIR))) == f"ckpt-{step}"
