"""--scales: coarse to fine, each scale starting from the previous one's result upsampled; one curve in
TensorBoard; resuming from a checkpoint at any scale; and the options' refusals."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

from conftest import run_main
from test_cli import assert_refused
from test_run import CHECKPOINT_DIR, LOG_DIR, events, scalar_series

# 40x32, 6 steps at half size (20x16), then full size up to step 10; every step saved.
SCALED = ["--scales", "0.5", "1", "--scale-steps", "6", "--iterations", "10", "--save-every", "1",
          "--log-every", "2", "--keep", "20"]


def pixels(path):
    return np.asarray(Image.open(path), dtype=np.float64)


def test_each_scale_has_its_size_and_the_curve_runs_on(workdir, base_args, capsys):
    code, out, err = run_main([*base_args, *SCALED, "--keep-best"], capsys)
    assert code == 0, err
    assert "Scale 1/2: 20x16, steps 1 to 6" in out and "Scale 2/2: 40x32, steps 7 to 10" in out
    for step in range(1, 11):
        assert Image.open(f"outputs/{step}.png").size == ((20, 16) if step <= 6 else (40, 32)), step
    assert Image.open("outputs/final.png").size == Image.open("outputs/final-best.png").size == (40, 32)

    assert [step for step, _ in scalar_series(LOG_DIR, "total_loss")] == [1, 2, 4, 6, 7, 8, 10]
    image_steps = [step for step, tag, _ in events(LOG_DIR) if tag.startswith("generated")]
    assert image_steps == list(range(1, 11))
    best = json.load(open(os.path.join(CHECKPOINT_DIR, "best.json")))
    assert best["step"] >= 7  # only the output size counts: losses at other sizes do not compare
    record = json.load(open(os.path.join(CHECKPOINT_DIR, "run.json")))
    assert record["scales"] == [0.5, 1.0] and record["scale_steps"] == [6] and record["width"] == 40


def test_the_next_scale_starts_from_the_last_result_upsampled(workdir, base_args, capsys):
    # A tiny learning rate: the image after the first full-size step is, to within rounding, where it started.
    code, _, err = run_main([*base_args, *SCALED, "--lr", "0.001"], capsys)
    assert code == 0, err
    upsampled = Image.open("outputs/6.png").resize((40, 32), Image.Resampling.BICUBIC)
    difference = np.abs(pixels("outputs/7.png") - np.asarray(upsampled, dtype=np.float64))
    assert difference.max() <= 2
    noise_start = pixels("outputs/1.png")  # and not from a fresh start: the half-size run had moved it
    assert np.abs(pixels("outputs/6.png") - noise_start).max() > 0


def rewind(folder, step):
    """Make `folder` look like the run crashed just after saving step `step`."""
    checkpoint_dir = os.path.join(folder, CHECKPOINT_DIR)
    kept = [os.path.join(checkpoint_dir, f"ckpt-{kept}") for kept in range(1, step + 1)]
    for later in range(step + 1, 11):
        for path in [f"{checkpoint_dir}/ckpt-{later}.index", f"{checkpoint_dir}/ckpt-{later}.data-00000-of-00001",
                     f"{folder}/outputs/{later}.png"]:
            os.remove(path)
    os.remove(os.path.join(folder, "outputs", "final.png"))
    tf.train.update_checkpoint_state(checkpoint_dir, kept[-1], all_model_checkpoint_paths=kept)


@pytest.mark.slow
@pytest.mark.parametrize("crash_step", [3, 6, 8])  # within the first scale, at its end, within the second
def test_a_resume_at_any_scale_ends_with_the_uninterrupted_image(tmp_path, base_args, capsys, monkeypatch,
                                                                 crash_step):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    straight.mkdir()
    monkeypatch.chdir(straight)
    code, _, err = run_main([*base_args, *SCALED], capsys)
    assert code == 0, err
    shutil.copytree(straight, resumed)
    rewind(resumed, crash_step)

    monkeypatch.chdir(resumed)
    code, out, err = run_main([*base_args, *SCALED], capsys)
    assert code == 0, err
    assert f"Resuming from step {crash_step}" in out
    np.testing.assert_array_equal(pixels(resumed / "outputs/final.png"), pixels(straight / "outputs/final.png"))
    assert [step for step, _ in scalar_series(LOG_DIR, "total_loss")] == [1, 2, 4, 6, 7, 8, 10]


def test_a_resume_with_other_scales_is_refused(workdir, base_args, capsys):
    code, _, err = run_main([*base_args, *SCALED], capsys)
    assert code == 0, err
    before = open(os.path.join(CHECKPOINT_DIR, "run.json")).read()
    code, out, err = run_main([*base_args, "--scales", "0.6", "1", *SCALED[3:]], capsys)
    assert_refused(code, out, err, "another problem", "scales", "--restart")
    assert open(os.path.join(CHECKPOINT_DIR, "run.json")).read() == before


@pytest.mark.parametrize("options, says", [
    (["--scales", "0.5"], "end at 1"),
    (["--scales", "0.5", "0.25", "1"], "rise"),
    (["--scales", "0", "1"], "greater than 0"),
    (["--scales", "0.5", "1", "--scale-steps", "0"], "at least 1"),
    (["--scale-steps", "10"], "needs several --scales"),
    (["--scales", "0.25", "0.5", "1", "--scale-steps", "1", "2", "3"], "3 values for 2 scales"),
    (["--scales", "0.5", "1", "--scale-steps", "300"], "--iterations 300 leaves no step for the last scale"),
])
def test_nonsense_scales_are_refused(workdir, base_args, capsys, options, says):
    code, out, err = run_main([*base_args, *options], capsys)
    assert_refused(code, out, err, says)
    assert not os.path.exists("checkpoints") and not os.path.exists("outputs")


def test_scale_steps_may_differ_per_scale(workdir, base_args, capsys):
    code, out, err = run_main([*base_args, "--scales", "0.25", "0.5", "1", "--scale-steps", "2", "3",
                               "--iterations", "7", "--save-every", "100"], capsys)
    assert code == 0, err
    assert "Scale 1/3: 10x8, steps 1 to 2" in out and "Scale 2/3: 20x16, steps 3 to 5" in out
    assert "Scale 3/3: 40x32, steps 6 to 7" in out
    assert sorted(os.listdir("outputs")) == ["2.png", "5.png", "7.png", "final.png"]


def test_one_scale_is_the_plain_run(workdir, base_args, capsys):
    code, out, err = run_main([*base_args, "--iterations", "3", "--scales", "1"], capsys)
    assert code == 0, err
    assert "Scale" not in out
    record = json.load(open(os.path.join(CHECKPOINT_DIR, "run.json")))
    assert record["scales"] == [1.0] and record["scale_steps"] == []


def test_a_run_recorded_before_scales_existed_resumes_as_one_scale(workdir, base_args, capsys):
    code, _, err = run_main([*base_args, "--iterations", "2"], capsys)
    assert code == 0, err
    record_path = os.path.join(CHECKPOINT_DIR, "run.json")
    record = json.load(open(record_path))
    del record["scales"], record["scale_steps"]
    json.dump(record, open(record_path, "w"))
    code, out, err = run_main([*base_args, "--iterations", "3"], capsys)
    assert code == 0, err
    assert "Resuming from step 2" in out
    code, out, err = run_main([*base_args, "--iterations", "4", "--scales", "0.5", "1", "--scale-steps", "1"], capsys)
    assert_refused(code, out, err, "another problem", "scales: [1.0] then, [0.5, 1.0] now")


def test_the_time_left_counts_larger_scales_by_their_pixels():
    from runner.stages import Stage, steps_left

    scales = [Stage(10, 10, 5), Stage(20, 10, 8), Stage(40, 20, 10)]
    assert steps_left(scales, 0, 2) == 3 + 3 * 2 + 2 * 8
    assert steps_left(scales, 1, 6) == 2 + 2 * 4
    assert steps_left(scales, 2, 9) == 1


# ---------------------------------------------------------------------------------------------------
# --adam-across-scales carry: Adam's moments and bias correction go on to the next scale, resized.

def first_move_at_the_second_scale(folder):
    """|image after the second scale's first step - its start (the first scale's result, upsampled)|, per pixel."""
    upsampled = Image.open(os.path.join(folder, "outputs", "6.png")).resize((40, 32), Image.Resampling.BICUBIC)
    return np.abs(pixels(os.path.join(folder, "outputs", "7.png")) - np.asarray(upsampled, dtype=np.float64))


def test_carried_moments_move_the_next_scale_less_than_adams_first_step(tmp_path, base_args, capsys, monkeypatch):
    moves = {}
    for how in ("restart", "carry"):
        folder = tmp_path / how
        folder.mkdir()
        monkeypatch.chdir(folder)
        code, _, err = run_main([*base_args, *SCALED, "--lr", "20", "--adam-across-scales", how], capsys)
        assert code == 0, err
        moves[how] = np.median(first_move_at_the_second_scale(folder))
    # restarted, Adam's first step moves every pixel by the learning rate (m̂/√v̂ = ±1); carried, by less where the
    # gradients of the first scale disagreed
    assert 18 <= moves["restart"] <= 22 and moves["carry"] < 0.8 * moves["restart"], moves


@pytest.mark.slow
@pytest.mark.parametrize("crash_step", [6, 8])  # at the first scale's end (its state carried from the checkpoint)
def test_a_run_carrying_adams_state_resumes_to_the_uninterrupted_image(tmp_path, base_args, capsys, monkeypatch,
                                                                       crash_step):
    args = [*base_args, *SCALED, "--adam-across-scales", "carry"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    straight.mkdir()
    monkeypatch.chdir(straight)
    assert run_main(args, capsys)[0] == 0
    shutil.copytree(straight, resumed)
    rewind(resumed, crash_step)
    monkeypatch.chdir(resumed)
    code, out, err = run_main(args, capsys)
    assert code == 0 and f"Resuming from step {crash_step}" in out, err
    np.testing.assert_array_equal(pixels(resumed / "outputs" / "final.png"), pixels(straight / "outputs" / "final.png"))
