"""--optimizer lbfgs: scipy's L-BFGS-B driving the Session, one evaluation per step."""

import os
import signal

import pytest
import tensorflow.compat.v1 as tf

from conftest import run_main, start_script, wait_for
from test_run import CHECKPOINT_DIR, LOG_DIR, scalar_series


def final_loss():
    return scalar_series(LOG_DIR, "total_loss")[-1]


@pytest.mark.slow
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


def test_lbfgs_keeps_the_pixels_within_0_to_255(workdir, capsys, base_args, vgg19_mat):
    import load_vgg

    code, _, err = run_main([*base_args, "--optimizer", "lbfgs", "--iterations", "30", "--style-weight", "1e4"],
                            capsys)
    assert code == 0, err
    reader = tf.train.load_checkpoint(CHECKPOINT_DIR)
    pixels = reader.get_tensor("generated_image") + load_vgg.load_weights(vgg19_mat[0]).mean_pixel  # as kept
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3
    assert pixels.min() < 1 or pixels.max() > 254  # the style pushed some pixels to a bound, where they stopped


@pytest.mark.slow
def test_lbfgs_stops_cleanly_on_sigterm(tmp_path, vgg19_mat, images):
    args = ["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"], "--width", "40",
            "--height", "32", "--optimizer", "lbfgs", "--iterations", "100000", "--save-every", "2"]
    process = start_script(args, cwd=tmp_path)
    # The second step's checkpoint: the loop runs, and the signal handler with it (a signal sent while the graph is
    # still being built would end the process as SIGTERM does, before anything is saved)
    wait_for(lambda: (tmp_path / CHECKPOINT_DIR / "ckpt-2.index").exists() or process.poll() is not None, 120,
             "the second step's checkpoint")
    process.send_signal(signal.SIGTERM)  # at once: L-BFGS takes hundreds of steps to converge here
    out, err = process.communicate(timeout=120)
    assert "converged" not in out and process.returncode == 143, (out, err)
    step = int(out.split("at step ")[1].split(":")[0])
    assert os.path.basename(tf.train.latest_checkpoint(str(tmp_path / CHECKPOINT_DIR))) == f"ckpt-{step}"


# ---------------------------------------------------------------------------------------------------
# lbfgs.py on its own: a function that is not a network.

def rosenbrock(x):
    """The Rosenbrock function of two variables (minimum 0 at (1, 1)) and its gradient, in NumPy."""
    import numpy as np

    a, b = x
    loss = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    gradient = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
    return loss, gradient


def test_lbfgs_steps_minimise_a_plain_function_one_evaluation_per_step():
    import lbfgs

    seen = []

    def evaluate(x):
        loss, gradient = rosenbrock(x)
        seen.append(x.copy())
        return loss, gradient, (len(seen), loss, x.copy())

    reports = list(lbfgs.steps(evaluate, [-1.2, 1.0], max_steps=500))
    assert [number for number, _, _ in reports] == list(range(1, len(seen) + 1))  # one report per evaluation
    assert len(reports) < 500  # it converged before running out of steps
    best = min(reports, key=lambda report: report[1])
    assert best[1] < 1e-8 and abs(best[2] - 1).max() < 1e-4


def test_lbfgs_steps_stop_at_max_steps_and_when_the_consumer_stops():
    import threading

    import lbfgs

    def evaluate(x):
        loss, gradient = rosenbrock(x)
        return loss, gradient, loss

    assert len(list(lbfgs.steps(evaluate, [-1.2, 1.0], max_steps=7))) == 7
    threads = threading.active_count()
    steps = lbfgs.steps(evaluate, [-1.2, 1.0], max_steps=100)
    first = [next(steps) for _ in range(3)]
    steps.close()  # as a loop left early on a signal: the worker thread ends too
    assert len(first) == 3 and threading.active_count() == threads


def test_an_error_in_the_evaluation_reaches_the_consumer():
    import lbfgs

    def evaluate(x):
        if evaluate.calls == 2:
            raise ValueError("the evaluation failed")
        evaluate.calls += 1
        loss, gradient = rosenbrock(x)
        return loss, gradient, loss
    evaluate.calls = 0

    steps = lbfgs.steps(evaluate, [-1.2, 1.0], max_steps=10)
    assert len([next(steps), next(steps)]) == 2
    with pytest.raises(ValueError, match="the evaluation failed"):
        next(steps)


def test_lbfgs_steps_stay_within_bounds():
    import numpy as np

    import lbfgs

    def evaluate(x):  # the unconstrained minimum, (3, -3), lies outside [-1, 1] x [-1, 1]
        return float(np.sum((x - [3, -3]) ** 2)), 2 * (x - [3, -3]), x.copy()

    visited = list(lbfgs.steps(evaluate, [0.0, 0.0], max_steps=50, bounds=(-1, 1)))
    assert all(np.abs(x).max() <= 1 for x in visited)
    np.testing.assert_allclose(visited[-1], [1, -1])
