"""Whole runs: what a run leaves behind, resuming in a new process, refusing another run's checkpoint,
exact resume after SIGKILL, SIGTERM, one TensorBoard curve, and the real TensorBoard server reading it."""

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

from conftest import OutputLines, run_main, run_script, start_script, wait_for

pytestmark = pytest.mark.slow  # every test here starts the script in a process of its own, or reads such a run

LOG_DIR = os.path.join("graphs", "style_transfer")
CHECKPOINT_DIR = os.path.join("checkpoints", "style_transfer")


def events(log_dir):
    """Every summary value in the run's event files: [(step, tag, value proto)], in file order."""
    found = []
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.train.summary_iterator(path):
            found += [(event.step, value.tag, value) for value in event.summary.value]
    return found


def scalar_series(log_dir, tag):
    return [(step, value.simple_value) for step, found_tag, value in events(log_dir) if found_tag == tag]


def folder_snapshot(folder):
    return {path: open(path, "rb").read() for path in glob.glob(os.path.join(folder, "**"), recursive=True)
            if os.path.isfile(path)}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, vgg19_mat, images):
    """One run of 12 steps (checkpoints every 5, logs every 4), kept for several tests to read."""
    folder = tmp_path_factory.mktemp("run")
    args = ["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"],
            "--width", "40", "--height", "32", "--iterations", "12", "--save-every", "5", "--log-every", "4"]
    code, out, err = run_script(args, cwd=folder)
    assert code == 0, err
    return folder, args, out


def test_a_run_lowers_the_loss_and_leaves_checkpoints_images_and_summaries(finished_run):
    folder, _, out = finished_run
    os.chdir(folder)
    assert "step 12/12" in out and "s/step" in out and "left" in out

    totals = scalar_series(LOG_DIR, "total_loss")
    assert [step for step, _ in totals] == [1, 4, 8, 12]
    assert totals[-1][1] < 0.5 * totals[0][1]
    tags = {tag for _, tag, _ in events(LOG_DIR)}
    assert {"content_loss", "style_loss", "style_loss/conv1_1", "style_loss/conv5_1", "configuration"} <= tags
    assert sorted(step for step, tag, _ in events(LOG_DIR) if tag.startswith("generated")) == [5, 10, 12]

    state = tf.train.get_checkpoint_state(CHECKPOINT_DIR)
    assert [os.path.basename(path) for path in state.all_model_checkpoint_paths] == ["ckpt-5", "ckpt-10", "ckpt-12"]
    assert not glob.glob(os.path.join(CHECKPOINT_DIR, "*.meta"))  # no MetaGraph full of weight constants
    record = json.load(open(os.path.join(CHECKPOINT_DIR, "run.json")))
    assert record["width"] == 40 and record["content_layers"] == ["conv4_2"] and len(record["content"]["sha256"]) == 64

    for name in ["5.png", "10.png", "12.png", "final.png"]:
        assert Image.open(os.path.join("outputs", name)).size == (40, 32)
    np.testing.assert_array_equal(np.asarray(Image.open("outputs/12.png")), np.asarray(Image.open("outputs/final.png")))


def test_a_new_process_resumes_at_the_saved_step_and_continues_the_curve(finished_run, tmp_path):
    folder, args, _ = finished_run
    resumed = tmp_path / "resumed"
    subprocess.run(["cp", "-r", str(folder), str(resumed)], check=True)
    code, out, err = run_script([*args, "--iterations", "16"], cwd=resumed)
    assert code == 0, err
    assert "Resuming from step 12" in out and "step 16/16" in out
    os.chdir(resumed)
    steps = [step for step, _ in scalar_series(LOG_DIR, "total_loss")]
    assert steps == [1, 4, 8, 12, 16]
    assert os.path.basename(tf.train.latest_checkpoint(CHECKPOINT_DIR)) == "ckpt-16"
    assert os.path.exists("outputs/16.png")


@pytest.mark.parametrize("change, says", [(["--style-weight", "2"], "style_weight"),
                                          (["--width", "48"], "width"), (["--seed", "3"], "seed")])
def test_a_checkpoint_of_another_problem_is_refused_untouched(finished_run, tmp_path, capsys, change, says):
    folder, args, _ = finished_run
    os.chdir(folder)
    before = folder_snapshot(".")
    code, out, err = run_main([*args, "--iterations", "20", *change], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert says in err and "--restart" in err and "--checkpoint-dir" in err
    assert folder_snapshot(".") == before


def test_other_style_image_is_refused(finished_run, tmp_path, capsys):
    folder, args, _ = finished_run
    os.chdir(folder)
    code, _, err = run_main([*args, "--style", args[args.index("--content") + 1]], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--restart" in err
    differences = err.split("holds a run of another problem (")[1].split("): pass")[0]
    assert differences.startswith("style: [{'sha256'") and " then, [{'sha256'" in differences, err
    assert "; " not in differences  # the style image is all that differs


def test_restart_starts_over(finished_run, tmp_path, capsys):
    folder, args, _ = finished_run
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(folder), str(copy)], check=True)
    os.chdir(copy)
    code, out, err = run_main([*args, "--iterations", "3", "--style-weight", "2", "--restart"], capsys)
    assert code == 0, err
    assert "Starting a new run" in out
    state = tf.train.get_checkpoint_state(CHECKPOINT_DIR)
    assert [os.path.basename(path) for path in state.all_model_checkpoint_paths] == ["ckpt-3"]
    assert json.load(open(os.path.join(CHECKPOINT_DIR, "run.json")))["style_weight"] == 2.0
    assert [step for step, _ in scalar_series(LOG_DIR, "total_loss")] == [1, 3]
    assert glob.glob(os.path.join(LOG_DIR, "replaced-*", "events.out.tfevents.*"))  # the old curve, kept aside


def test_events_beyond_the_restored_step_are_purged(finished_run, tmp_path, capsys):
    """As after a crash between a log step and the next checkpoint: the curve must not run twice."""
    folder, args, _ = finished_run
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(folder), str(copy)], check=True)
    os.chdir(copy)
    old = dict(scalar_series(LOG_DIR, "total_loss"))
    for path in glob.glob(os.path.join(CHECKPOINT_DIR, "ckpt-12.*")):
        os.remove(path)
    tf.train.update_checkpoint_state(CHECKPOINT_DIR, os.path.join(CHECKPOINT_DIR, "ckpt-10"),
                                     [os.path.join(CHECKPOINT_DIR, name) for name in ("ckpt-5", "ckpt-10")])
    code, out, err = run_main([*args, "--iterations", "12"], capsys)
    assert code == 0 and "Resuming from step 10" in out, err
    series = scalar_series(LOG_DIR, "total_loss")
    assert [step for step, _ in series] == [1, 4, 8, 12]
    assert dict(series)[12] == pytest.approx(old[12], rel=1e-6)  # the same step gives the same loss


def read_pixels(path):
    return np.asarray(Image.open(path), dtype=np.int16)


def straight_and_killed(args, tmp_path, kill_once):
    """The same command run straight through in one folder, and in another SIGKILLed (no chance to save
    anything) once the file `kill_once` (relative to that folder) exists, then run again there.
    Returns (straight folder, interrupted folder, the second run's stdout)."""
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    straight.mkdir(), interrupted.mkdir()
    code, _, err = run_script(args, cwd=straight)
    assert code == 0, err

    process = start_script(args, cwd=interrupted)
    wait_for(lambda: os.path.exists(interrupted / kill_once) or process.poll() is not None, 120, kill_once)
    process.kill()
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    code, out, err = run_script(args, cwd=interrupted)
    assert code == 0, err
    return straight, interrupted, out


def test_sigkill_then_the_same_command_gives_the_uninterrupted_image(tmp_path, vgg19_mat, images):
    args = ["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"],
            "--width", "40", "--height", "32", "--iterations", "40", "--save-every", "4", "--log-every", "5"]
    straight, interrupted, out = straight_and_killed(args, tmp_path, "outputs/12.png")
    assert "Resuming from step" in out
    difference = np.abs(read_pixels(straight / "outputs/final.png") - read_pixels(interrupted / "outputs/final.png"))
    assert difference.max() <= 1


@pytest.mark.parametrize("number, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_saves_and_says_where(tmp_path, vgg19_mat, images, number, code):
    args = ["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"],
            "--width", "40", "--height", "32", "--iterations", "100000", "--save-every", "1000", "--log-every", "3"]
    process = start_script(args, cwd=tmp_path)
    lines = OutputLines(process)
    wait_for(lambda: lines.has(" 3/100000 ") or process.poll() is not None, 120, "the third step's progress line")
    process.send_signal(number)
    process.wait(timeout=120)
    out, err = lines.text(), process.stderr.read()
    assert process.returncode == code, err
    assert f"Stopped by {signal.Signals(number).name} at step" in out
    step = int(out.split("at step ")[1].split(":")[0])
    assert 3 <= step < 1000
    assert os.path.basename(tf.train.latest_checkpoint(str(tmp_path / CHECKPOINT_DIR))) == f"ckpt-{step}"
    assert os.path.exists(tmp_path / "outputs" / f"{step}.png")


def test_sigterm_before_the_steps_begin_is_one_line_and_the_same_exit_code(tmp_path, vgg19_mat, images):
    """A signal while the run reads its inputs or builds its graph (here: as soon as it says it starts a new run,
    before its first step) stops it as one between steps does, with its exit code, and without a traceback."""
    args = ["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"],
            "--width", "40", "--height", "32", "--iterations", "100000", "--save-every", "1000"]
    process = start_script(args, cwd=tmp_path)
    lines = OutputLines(process)
    wait_for(lambda: lines.has("Starting a new run") or process.poll() is not None, 120, "the run to start")
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    out, err = lines.text(), process.stderr.read()
    assert process.returncode == 143, err
    assert "Traceback" not in err
    if "Stopped by SIGTERM" not in out:  # it came before the first step ended: nothing to save yet
        assert len(err.strip().splitlines()) == 1 and "interrupted (SIGTERM)" in err, err


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_tensorboard_serves_the_total_loss_curve(finished_run):
    folder, _, _ = finished_run
    port = free_port()
    tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    server = subprocess.Popen([tensorboard, "--logdir", str(folder / LOG_DIR), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=.&tag=total_loss"
    try:
        deadline, series = time.monotonic() + 90, None
        while series is None:
            assert server.poll() is None, "tensorboard exited"
            assert time.monotonic() < deadline, "tensorboard did not serve the curve in time"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    series = json.loads(response.read())
            except OSError:
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    os.chdir(folder)
    expected = scalar_series(LOG_DIR, "total_loss")
    assert [step for _, step, _ in series] == [step for step, _ in expected]
    assert [value for _, _, value in series] == pytest.approx([value for _, value in expected], rel=1e-6)
