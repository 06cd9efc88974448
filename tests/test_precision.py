"""--precision bf16: the network in bfloat16, everything the optimiser touches in float32; deterministic, resumable,
part of the run's identity; --fast takes it where the processor has it."""

import json
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import load_vgg
from conftest import run_main
from runner import tf_setup
from test_load_vgg import numpy_conv_same
from test_losses import built, small_problem, started, targets_of
from test_run import CHECKPOINT_DIR, LOG_DIR, read_pixels, scalar_series, straight_and_killed

BF16 = ["--precision", "bf16"]


def test_in_bf16_the_network_holds_bfloat16_constants_and_hands_back_float32_layers(vgg19_mat):
    _, written = vgg19_mat
    weights = load_vgg.load_weights(vgg19_mat[0], "relu2_1")
    image = np.random.default_rng(0).uniform(-100, 100, (10, 14, 3))
    found = {}
    for precision in ("fp32", "bf16"):
        with tf.Graph().as_default(), tf.Session() as sess:
            constants = load_vgg.weight_constants(weights, precision)
            kernel = constants["conv2_1"][0]
            assert kernel.dtype == load_vgg.PRECISIONS[precision]
            bytes_each = len(kernel.op.get_attr("value").tensor_content) / written["conv2_1"][0].size
            assert bytes_each == {"fp32": 4, "bf16": 2}[precision]
            layers = load_vgg.vgg_net(tf.constant(image[None], tf.float32), constants, "relu2_1")
            assert all(layer.dtype == tf.float32 for layer in layers.values())
            found[precision] = sess.run(layers)

    relu1_1 = np.maximum(numpy_conv_same(image, *written["conv1_1"]), 0)
    relu1_2 = np.maximum(numpy_conv_same(relu1_1, *written["conv1_2"]), 0)
    relu2_1 = np.maximum(numpy_conv_same(relu1_2.reshape(5, 2, 7, 2, 64).mean(axis=(1, 3)), *written["conv2_1"]), 0)
    for name, expected in [("relu1_1", relu1_1), ("relu2_1", relu2_1)]:
        scale = np.abs(expected).max()
        np.testing.assert_allclose(found["fp32"][name][0], expected, atol=1e-4 * scale)
        # bfloat16 keeps 8 bits of mantissa: within a few parts in a hundred, and really rounded
        np.testing.assert_allclose(found["bf16"][name][0], expected, atol=3e-2 * scale)
        assert np.abs(found["bf16"][name][0] - expected).max() > 1e-4 * scale, "bf16 computed in float32"


def test_in_bf16_the_image_gradient_and_adam_stay_float32_and_the_loss_follows_fp32(vgg19_mat):
    rng = np.random.default_rng(5)
    content, style = rng.uniform(0, 255, (2, 32, 40, 3)).astype(np.float32)
    weights = load_vgg.load_weights(vgg19_mat[0], "relu5_1")
    losses = {}
    for precision in ("fp32", "bf16"):
        model, start, images = built(small_problem(precision=precision), weights, content, style)
        with model.graph.as_default():
            gradient = tf.gradients(model.total_loss, [model.image])[0]
            assert {variable.dtype.base_dtype for variable in tf.global_variables()} <= {tf.float32, tf.int64}
        assert gradient.dtype == tf.float32 and model.total_loss.dtype == tf.float32
        with tf.Session(graph=model.graph) as sess:
            started(model, sess, start, images)
            losses[precision] = sess.run(model.total_loss, model.feeds)
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.03)
    assert losses["bf16"] != losses["fp32"]


@pytest.mark.slow  # a whole run of several seconds: out of the quick subset
def test_bf16_runs_are_deterministic_and_differ_from_fp32(workdir, capsys, base_args):
    finals = {}
    for name, extra in (("first", BF16), ("again", BF16), ("fp32", [])):
        folders = ["--checkpoint-dir", f"{name}/ck", "--log-dir", f"{name}/log", "--output-dir", f"{name}/out",
                   "--output", f"{name}/out/final.png"]
        code, _, err = run_main([*base_args, *extra, *folders, "--iterations", "6"], capsys)
        assert code == 0, err
        finals[name] = read_pixels(f"{name}/out/final.png")
        with open(f"{name}/ck/run.json") as record:
            assert json.load(record)["precision"] == ("bf16" if extra else "fp32")
    assert np.array_equal(finals["first"], finals["again"])
    assert not np.array_equal(finals["first"], finals["fp32"])


def test_the_precision_is_part_of_the_runs_identity(workdir, capsys, base_args):
    code, _, err = run_main([*base_args, *BF16, "--iterations", "2"], capsys)
    assert code == 0, err
    code, _, err = run_main([*base_args, "--iterations", "4"], capsys)
    assert code == 2 and "precision: bf16 then, fp32 now" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_main([*base_args, *BF16, "--iterations", "4"], capsys)
    assert code == 0 and "Resuming from step 2" in out, err
    assert [step for step, _ in scalar_series(LOG_DIR, "total_loss")] == [1, 2, 4]  # each run logs its first and last


@pytest.mark.parametrize("native", [True, False])
def test_fast_takes_bf16_only_where_the_processor_has_it(workdir, capsys, base_args, monkeypatch, native):
    monkeypatch.setattr(tf_setup, "native_bfloat16", lambda: native)
    code, _, err = run_main([*base_args, "--fast", "--scale-steps", "1", "--iterations", "5"], capsys)
    assert code == 0, err
    with open(os.path.join(CHECKPOINT_DIR, "run.json")) as record:
        assert json.load(record)["precision"] == ("bf16" if native else "fp32")
    assert "warning" not in err


def test_bf16_asked_for_where_it_is_emulated_runs_after_one_warning(workdir, capsys, base_args, monkeypatch):
    monkeypatch.setattr(tf_setup, "native_bfloat16", lambda: False)
    code, _, err = run_main([*base_args, *BF16, "--iterations", "1"], capsys)
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: --precision bf16") and "slower" in lines[0]


@pytest.mark.parametrize("flags, native", [("fpu sse avx512f avx512_bf16 avx512_vnni", True),
                                           ("fpu sse amx_bf16 amx_tile", True), ("fpu sse avx512f", False),
                                           (None, False)])
def test_native_bfloat16_is_read_from_the_processors_flags(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    if flags is not None:
        cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n"
                           f"flags\t\t: {flags}\n")
    if tf_setup.ON_GPU:
        pytest.skip("on a GPU the compute capability decides")
    assert tf_setup.native_bfloat16(str(cpuinfo)) is native


@pytest.mark.slow
def test_sigkill_then_the_same_command_gives_the_uninterrupted_bf16_image(tmp_path, vgg19_mat, images):
    args = ["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"], *BF16,
            "--width", "40", "--height", "32", "--iterations", "24", "--save-every", "4", "--log-every", "5"]
    straight, interrupted, out = straight_and_killed(args, tmp_path, "outputs/12.png")
    assert "Resuming from step" in out
    assert np.array_equal(read_pixels(straight / "outputs/final.png"), read_pixels(interrupted / "outputs/final.png"))


def test_a_tile_sees_its_surroundings_in_bf16_as_in_fp32(vgg19_mat):
    """The tile's view (activations held at 0 past the border, pools over the picture's part) in bfloat16."""
    from runner import tiles

    weights = load_vgg.load_weights(vgg19_mat[0])
    picture = np.random.default_rng(2).normal(0, 40, (24, 40, 3)).astype(np.float32)
    surroundings = np.pad(picture, ((16, 16), (16, 16), (0, 0)), constant_values=np.nan)
    view = tiles.WithinSurroundings(16, 40, 24)
    with tf.Graph().as_default(), tf.Session() as sess:
        constants = load_vgg.weight_constants(weights, "bf16")
        alone = load_vgg.vgg_net(picture[np.newaxis], constants, "relu5_1")["relu4_2"]
        seen, inside = tiles.past_the_border(tf.constant(surroundings[np.newaxis]))
        within = view.own(load_vgg.vgg_net(seen, constants, "relu5_1", inside=inside)["relu4_2"], "relu4_2")
        expected, found = sess.run([alone, within])
    assert np.isfinite(found).all()
    np.testing.assert_allclose(found, expected, atol=3e-2 * np.abs(expected).max())


def test_style_targets_are_gathered_in_the_problems_precision(vgg19_mat):
    weights = load_vgg.load_weights(vgg19_mat[0], "relu5_1")
    style = np.random.default_rng(3).uniform(0, 255, (32, 40, 3)).astype(np.float32)
    targets = {precision: targets_of(weights, small_problem(precision=precision), [[style]], style)["style_loss"]
               for precision in ("fp32", "bf16")}
    for fp32, bf16 in zip(targets["fp32"], targets["bf16"]):
        np.testing.assert_allclose(bf16, fp32, atol=5e-2 * np.abs(fp32).max())
    assert not np.allclose(targets["bf16"][0], targets["fp32"][0], rtol=1e-6)


def test_in_bf16_the_memory_guard_counts_half_width_activations_and_tiles_larger(monkeypatch):
    """Where the memory allows the whole image in bf16 but not in fp32, fp32 is tiled and bf16 is not; where both
    must tile, bf16's tiles are at least as large."""
    from runner import memory

    deepest, width, height = "relu5_1", 3840, 2160
    fp32, bf16 = (memory.memory_needed(width, height, deepest, precision) for precision in ("fp32", "bf16"))
    assert bf16 < fp32
    monkeypatch.setattr(memory.utils, "available_memory", lambda: (fp32 + bf16) / 2)

    def tiling(precision):
        return memory.choose_tiling(width, height, deepest, precision, None, lambda tile: min(64, tile // 4), (1.0,),
                                    (), 20)
    assert tiling("bf16") is None and tiling("fp32") is not None
    monkeypatch.setattr(memory.utils, "available_memory", lambda: memory.MEMORY_FIXED + 2e9)
    assert tiling("bf16").tiles[0] >= tiling("fp32").tiles[0]
