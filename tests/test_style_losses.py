"""--style-loss mean-std and w2 against independent NumPy and SciPy computations: the matrix square root and its
gradient (near-singular matrices too), each loss's value, the style's statistics gathered over pieces and
blends, and runs that lower each loss, with a curve per layer, as part of the run's identity."""

import json
import os

import numpy as np
import pytest
import scipy.linalg
import tensorflow.compat.v1 as tf

import style_transfer
from conftest import run_main
from runner import controls
from test_run import LOG_DIR, scalar_series


def evaluate(tensor, feeds=None):
    with tf.Session() as sess:
        return sess.run(tensor, feeds)


def spd(size, seed, rank=None, scale=1.0):
    """A symmetric positive semi-definite matrix; of the given rank (near-singular: the rest of its eigenvalues
    tiny), as a layer's covariance with dead or duplicate channels has."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(size=(size, rank or size))
    matrix = factor @ factor.T * scale
    return matrix + (1e-6 * np.eye(size) if rank else 0.1 * np.eye(size))


@pytest.mark.parametrize("size, rank, scale", [(4, None, 1.0), (16, None, 100.0), (16, 3, 1.0), (64, 10, 50.0)])
def test_the_newton_schulz_square_root_matches_scipy(size, rank, scale):
    matrix = spd(size, seed=size, rank=rank, scale=scale)
    with tf.Graph().as_default():
        root = evaluate(style_transfer.newton_schulz_square_root(tf.constant(matrix, tf.float64), steps=40))
    expected = np.real(scipy.linalg.sqrtm(matrix))
    np.testing.assert_allclose(root @ root, matrix, rtol=1e-3, atol=1e-4 * np.abs(matrix).max())
    np.testing.assert_allclose(np.trace(root), np.trace(expected), rtol=2e-3)
    np.testing.assert_allclose(controls.symmetric_root(matrix, floor=0), expected, rtol=1e-6,
                               atol=1e-6 * np.abs(expected).max())


def trace_of_root(matrix):
    return np.trace(np.real(scipy.linalg.sqrtm(matrix)))


@pytest.mark.parametrize("rank", [None, 2])
def test_the_gradient_of_the_square_roots_trace_matches_scipy_and_stays_finite(rank):
    matrix = spd(6, seed=7, rank=rank)
    with tf.Graph().as_default():
        variable = tf.constant(matrix, tf.float64)
        gradient = evaluate(tf.gradients(tf.linalg.trace(style_transfer.newton_schulz_square_root(variable, 40)),
                                         variable)[0])
    assert np.isfinite(gradient).all()
    if rank is None:  # well conditioned: ½ A^(-½), and the finite difference of SciPy's value
        np.testing.assert_allclose((gradient + gradient.T) / 2, 0.5 * np.linalg.inv(scipy.linalg.sqrtm(matrix)),
                                   rtol=1e-3, atol=1e-4)
        nudge = np.zeros_like(matrix)
        nudge[1, 2] = nudge[2, 1] = 1e-6
        numeric = (trace_of_root(matrix + nudge) - trace_of_root(matrix - nudge)) / 2e-6
        np.testing.assert_allclose(gradient[1, 2] + gradient[2, 1], numeric, rtol=1e-3)


def numpy_moments(features):
    matrix = features.reshape(-1, features.shape[-1]).astype(np.float64)
    mean = matrix.mean(axis=0)
    return mean, matrix.T @ matrix / len(matrix) - np.outer(mean, mean)


def layer_statistics(features):
    matrix = features.reshape(-1, features.shape[-1]).astype(np.float64)
    return matrix.T @ matrix, matrix.sum(axis=0), len(matrix)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # SciPy's own, on the singular matrix meant
def test_the_w2_and_mean_std_losses_match_numpy():
    rng = np.random.default_rng(3)
    generated = np.maximum(rng.normal(1, 1, (1, 6, 7, 5)), 0).astype(np.float32)
    style = np.maximum(rng.normal(2, 1.5, (1, 9, 4, 5)), 0).astype(np.float32)
    style[..., 4] = 0  # a dead channel: a singular covariance
    gram, total, count = layer_statistics(style)
    statistics = [style_transfer.StyleStatistics([gram], [total], [count])]
    moments = style_transfer.blended_moments(statistics[0], (1.0,))
    w2_targets = style_transfer.WassersteinStyleLoss.layer_targets(*moments)
    mean_std_targets = style_transfer.MeanStdStyleLoss.layer_targets(*moments)
    with tf.Graph().as_default():
        second, mean, _ = style_transfer.weighted_moments(tf.constant(generated))
        w2 = evaluate(style_transfer.WassersteinStyleLoss.statistic_loss(second, mean, *w2_targets))
        mean_std = evaluate(style_transfer.MeanStdStyleLoss.statistic_loss(second, mean, *mean_std_targets))
    mean_1, cov_1 = numpy_moments(generated)
    mean_2, cov_2 = numpy_moments(style)
    root_2 = np.real(scipy.linalg.sqrtm(cov_2))
    expected_w2 = np.sum((mean_1 - mean_2) ** 2) + np.trace(cov_1 + cov_2 - 2 * np.real(
        scipy.linalg.sqrtm(root_2 @ cov_1 @ root_2)))
    np.testing.assert_allclose(w2, expected_w2, rtol=2e-3, atol=1e-3)
    floor = style_transfer.VARIANCE_FLOOR
    expected_mean_std = np.sum((mean_1 - mean_2) ** 2) + np.sum(
        (np.sqrt(np.diag(cov_1) + floor) - np.sqrt(np.maximum(np.diag(cov_2), 0) + floor)) ** 2)
    np.testing.assert_allclose(mean_std, expected_mean_std, rtol=1e-4)


def test_a_styles_statistics_add_up_over_pieces_and_blend_as_a_mixture():
    rng = np.random.default_rng(4)
    first, second, other = (rng.normal(size=(1, height, 3, 4)) for height in (5, 8, 6))
    statistics = style_transfer.StyleStatistics(*zip(*[  # the first style in two pieces, the other whole
        tuple(a + b for a, b in zip(layer_statistics(first), layer_statistics(second))), layer_statistics(other)]))
    mean, second_moment = style_transfer.blended_moments(statistics, (0.25, 0.75))
    pooled = np.concatenate([first, second], axis=1).reshape(-1, 4)
    other_matrix = other.reshape(-1, 4)
    np.testing.assert_allclose(mean, 0.25 * pooled.mean(axis=0) + 0.75 * other_matrix.mean(axis=0))
    np.testing.assert_allclose(second_moment, 0.25 * pooled.T @ pooled / len(pooled)
                               + 0.75 * other_matrix.T @ other_matrix / len(other_matrix))


@pytest.mark.slow  # a whole run of several seconds: out of the quick subset
@pytest.mark.parametrize("kind", ["mean-std", "w2"])
def test_a_run_with_another_style_loss_lowers_it_and_records_it(workdir, capsys, base_args, kind):
    args = [*base_args, "--style-loss", kind, "--iterations", "8", "--log-every", "1", "--optimizer", "lbfgs"]
    code, out, err = run_main(args, capsys)
    assert code == 0, err
    style = [loss for _, loss in scalar_series(LOG_DIR, "style_loss")]
    assert len(style) == 8 and style[-1] < 0.7 * style[0] and np.isfinite(style).all()
    for layer in ("conv1_1", "conv5_1"):
        assert len(scalar_series(LOG_DIR, f"style_loss/{layer}")) == 8
    assert json.load(open(os.path.join("checkpoints", "style_transfer", "run.json")))["style_loss"] == kind
    code, out, err = run_main([*base_args, "--iterations", "10", "--optimizer", "lbfgs"], capsys)  # gram: another
    assert code == 2 and f"style_loss: {kind} then, gram now" in err


# ---------------------------------------------------------------------------------------------------
# --average: the image saved is a moving average of the steps' images, and a resume goes on exactly.

def pixels(path):
    from PIL import Image

    return np.asarray(Image.open(path), dtype=np.float64)


@pytest.mark.slow
def test_the_average_saved_is_the_moving_average_of_the_steps_images(workdir, capsys, base_args):
    steps = ["--iterations", "8", "--save-every", "1"]
    assert run_main([*base_args, *steps, "--output-dir", "plain", "--output", "plain/final.png",
                     "--checkpoint-dir", "c1", "--log-dir", "g1"], capsys)[0] == 0
    assert run_main([*base_args, *steps, "--average", "0.5", "--checkpoint-dir", "c2", "--log-dir", "g2"],
                    capsys)[0] == 0
    average = None  # from the plain run's step images: the average's own start weighs 0.5 ** 8 at the end
    for step in range(1, 9):
        image = pixels(f"plain/{step}.png")
        average = image if average is None else 0.5 * average + 0.5 * image
    difference = np.abs(pixels("outputs/final.png") - average)
    assert np.percentile(difference, 99) <= 2 and difference.mean() < 0.5, (difference.max(), difference.mean())
    assert np.abs(pixels("outputs/final.png") - pixels("plain/final.png")).mean() > 1  # not the last step's


@pytest.mark.slow
def test_an_averaged_run_resumes_to_the_same_image(workdir, capsys, base_args):
    common = [*base_args, "--average", "0.9", "--save-every", "4"]
    assert run_main([*common, "--iterations", "8", "--checkpoint-dir", "straight", "--log-dir", "g1",
                     "--output-dir", "o1", "--output", "o1/final.png"], capsys)[0] == 0
    assert run_main([*common, "--iterations", "4"], capsys)[0] == 0
    code, out, err = run_main([*common, "--iterations", "8"], capsys)  # another process would read the same files
    assert code == 0 and "Resuming from step 4" in out, err
    np.testing.assert_array_equal(pixels("outputs/final.png"), pixels("o1/final.png"))


def test_average_with_lbfgs_is_refused_in_one_line(workdir, capsys, base_args):
    code, out, err = run_main([*base_args, "--average", "0.99", "--optimizer", "lbfgs"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--average DECAY averages Adam's steps" in err
