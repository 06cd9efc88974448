"""Options beyond CS20: output size from one side, colour preservation, smoothness, start, pooling."""

import os

import numpy as np
import pytest
from PIL import Image

from conftest import run_main
from test_run import LOG_DIR, scalar_series


def files_args(vgg19_mat, images):
    return ["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"], "--iterations", "2"]


@pytest.mark.parametrize("size, expected", [(["--width", "40"], (40, 30)), (["--height", "30"], (40, 30)),
                                            (["--width", "36", "--height", "36"], (36, 36))])
def test_one_side_gives_the_other_from_the_content_aspect(workdir, capsys, vgg19_mat, images, size, expected):
    code, _, err = run_main([*files_args(vgg19_mat, images), *size], capsys)  # the content image is 80x60
    assert code == 0, err
    assert Image.open("outputs/final.png").size == expected


def test_preserve_colors_keeps_the_contents_chroma(workdir, capsys, vgg19_mat, images):
    code, _, err = run_main([*files_args(vgg19_mat, images), "--width", "40", "--height", "30", "--preserve-colors"],
                            capsys)
    assert code == 0, err
    result = np.asarray(Image.open("outputs/final.png").convert("YCbCr"), dtype=float)
    content = Image.open(images["content"]).convert("RGB").resize((40, 30), Image.Resampling.LANCZOS)
    content = np.asarray(content.convert("YCbCr"), dtype=float)
    assert np.abs(result[..., 1:] - content[..., 1:]).mean() < 3  # chroma: the content's
    assert np.abs(result[..., 0] - content[..., 0]).mean() > 5  # luminance: the result's own


def test_tv_weight_smooths_and_shows_in_tensorboard(tmp_path, monkeypatch, capsys, vgg19_mat, images):
    roughness = {}
    for tv_weight in ("0", "50"):
        monkeypatch.chdir(tmp_path)
        (tmp_path / tv_weight).mkdir()
        monkeypatch.chdir(tmp_path / tv_weight)
        code, _, err = run_main([*files_args(vgg19_mat, images), "--width", "40", "--height", "32", "--init", "random",
                                 "--iterations", "10", "--tv-weight", tv_weight, "--log-every", "5"], capsys)
        assert code == 0, err
        pixels = np.asarray(Image.open("outputs/final.png"), dtype=float)
        roughness[tv_weight] = np.abs(np.diff(pixels, axis=0)).mean() + np.abs(np.diff(pixels, axis=1)).mean()
        tv_curve = scalar_series(LOG_DIR, "tv_loss")
        assert (len(tv_curve) == 3) == (tv_weight != "0")
    assert roughness["50"] < 0.8 * roughness["0"]


def test_start_and_pooling_are_part_of_the_run_record(workdir, capsys, vgg19_mat, images):
    args = [*files_args(vgg19_mat, images), "--width", "40", "--height", "32", "--pooling", "max", "--init", "content"]
    code, _, err = run_main(args, capsys)
    assert code == 0, err
    code, _, err = run_main([*args[:-1], "style"], capsys)
    assert code == 2 and "init: content then, style now" in err
    code, _, err = run_main([*args, "--pooling", "avg"], capsys)
    assert code == 2 and "pooling: max then, avg now" in err


@pytest.mark.parametrize("ratio", ["-0.1", "1.5", "nan"])
def test_noise_ratio_is_a_fraction(workdir, capsys, vgg19_mat, images, ratio):
    code, _, err = run_main([*files_args(vgg19_mat, images), "--noise-ratio", ratio], capsys)
    assert code == 2 and "--noise-ratio" in err


def test_blended_styles_give_the_blended_gram_targets(vgg19_mat):
    """Two styles at 3:1 give 0.75 and 0.25 of their Gram matrices; a style of another size than the output gives
    its Gram matrix per position (the model scales it to the output's positions: a Gram matrix is a sum over
    them)."""
    import load_vgg
    from test_losses import numpy_gram, small_problem, targets_of

    rng = np.random.default_rng(7)
    rng.uniform(0, 255, (32, 40, 3))  # the content image it once drew: the styles below stay as they were
    first, second = rng.uniform(0, 255, (2, 32, 40, 3)).astype(np.float32)
    half = rng.uniform(0, 255, (16, 20, 3)).astype(np.float32)
    weights = load_vgg.load_weights(vgg19_mat[0], "relu2_1")
    shallow = dict(style_layers=("conv1_1", "conv2_1"), style_layer_weights=(1.0, 1.0), content_layers=("conv1_1",))
    blended_problem = small_problem(**shallow, style_blend_weights=(0.75, 0.25))
    blended = targets_of(weights, blended_problem, [[first], [second]], first)["style_loss"]
    alone = [targets_of(weights, small_problem(**shallow), [[image]], first)["style_loss"]
             for image in (first, second, half)]
    for layer in range(2):
        np.testing.assert_allclose(blended[layer], 0.75 * alone[0][layer] + 0.25 * alone[1][layer], rtol=1e-4)
    # conv1_1 of the half-size style: its Gram matrix over its 16x20 positions, per position (the model scales it
    # to the generated image's positions).
    import tensorflow.compat.v1 as tf
    with tf.Graph().as_default(), tf.Session() as sess:
        features = sess.run(load_vgg.vgg_net(tf.constant((half - weights.mean_pixel)[None]),
                                             load_vgg.weight_constants(weights), "relu1_1")["relu1_1"])
    np.testing.assert_allclose(alone[2][0], numpy_gram(features.astype(np.float64)) / (16 * 20), rtol=1e-3)


def test_several_styles_and_style_scale_run_and_are_recorded(workdir, capsys, vgg19_mat, images, tmp_path_factory):
    import json

    from conftest import write_image

    wide = write_image(tmp_path_factory.mktemp("styles") / "wide.png", 120, 40, seed=9)
    def args(blend):
        return ["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"], wide,
                "--style-blend-weights", *blend, "--style-scale", "0.5", "--width", "40", "--height", "32",
                "--iterations", "2"]

    code, _, err = run_main(args(["3", "1"]), capsys)
    assert code == 0, err
    record = json.load(open("checkpoints/style_transfer/run.json"))
    assert record["style_blend_weights"] == [0.75, 0.25] and record["style_scale"] == 0.5
    assert len(record["style"]) == 2
    code, _, err = run_main(args(["1", "1"]), capsys)  # another blend: another problem
    assert code == 2 and "style_blend_weights: [0.75, 0.25] then, [0.5, 0.5] now" in err


@pytest.mark.parametrize("weights, says", [(["1"], "has 1 values for 2 --style"), (["0", "0"], "all 0")])
def test_blend_weights_are_checked(workdir, capsys, vgg19_mat, images, weights, says):
    code, _, err = run_main(["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"],
                             images["style"], "--style-blend-weights", *weights], capsys)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1


def test_texture_synthesis_needs_no_content_image(workdir, capsys, vgg19_mat, images):
    args = ["--vgg", vgg19_mat[0], "--style", images["style"], "--texture", "--width", "40", "--iterations", "6",
            "--log-every", "3", "--content", "does-not-exist.jpg"]  # no content image is read
    code, out, err = run_main(args, capsys)
    assert code == 0, err
    assert Image.open("outputs/final.png").size == (40, 40)  # the square style's aspect
    assert "content" not in out.split("step 3/6")[1].split("\n")[0]
    series = scalar_series(LOG_DIR, "style_loss")
    assert [step for step, _ in series] == [1, 3, 6] and series[-1][1] < series[0][1]
    assert scalar_series(LOG_DIR, "content_loss") == []
    import json
    record = json.load(open("checkpoints/style_transfer/run.json"))
    assert record["content"] is None and record["init"] == "random"


@pytest.mark.parametrize("extra, says", [(["--preserve-colors"], "--preserve-colors needs a content image"),
                                         (["--init", "content"], "--init content needs a content image")])
def test_texture_refuses_what_needs_a_content_image(workdir, capsys, vgg19_mat, images, extra, says):
    code, _, err = run_main(["--vgg", vgg19_mat[0], "--style", images["style"], "--texture", *extra], capsys)
    assert code == 2 and says in err


def test_keras_h5_weights_run_end_to_end(workdir, tmp_path_factory, capsys, vgg19_mat, images):
    from keras_weights import write_keras_vgg_h5

    path = str(tmp_path_factory.mktemp("keras") / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
    write_keras_vgg_h5(path, vgg19_mat[1])
    code, _, err = run_main(["--vgg", path, "--content", images["content"], "--style", images["style"],
                             "--width", "40", "--height", "32", "--iterations", "2"], capsys)
    assert code == 0, err
    assert Image.open("outputs/final.png").size == (40, 32)


def test_keep_best_writes_the_lowest_loss_image_seen(workdir, capsys, vgg19_mat, images):
    args = ["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"], "--width", "40",
            "--height", "32", "--iterations", "12", "--save-every", "1", "--log-every", "1", "--keep-best"]
    code, out, err = run_main([*args, "--lr", "40"], capsys)  # a rate that overshoots: the loss goes up and down
    assert code == 0, err
    import json
    series = dict(scalar_series(LOG_DIR, "total_loss"))
    best = json.load(open("checkpoints/style_transfer/best.json"))
    assert best["loss"] == pytest.approx(min(series.values()), rel=1e-6)
    assert series[best["step"]] == pytest.approx(best["loss"], rel=1e-6)
    assert 1 < best["step"] < 12, "pick a rate whose best step is neither the first nor the last"
    # The loss reported at step k is that of the image Adam started step k from: the image saved at step k-1.
    np.testing.assert_array_equal(np.asarray(Image.open("outputs/final-best.png")),
                                  np.asarray(Image.open(f"outputs/{best['step'] - 1}.png")))
    assert f"best {best['loss']:.4g} (step {best['step']})" in out
    assert scalar_series(LOG_DIR, "best_total_loss")[-1][1] == pytest.approx(best["loss"], rel=1e-6)


def test_several_content_images_each_get_their_own_folders(workdir, tmp_path_factory, capsys, monkeypatch, vgg19_mat,
                                                          images):
    import os

    import style_transfer
    from conftest import write_image

    folder = tmp_path_factory.mktemp("contents")
    write_image(folder / "a.png", 60, 40, seed=11)
    write_image(folder / "b.jpg", 40, 60, seed=12)
    (folder / "notes.txt").write_text("not an image, not picked up\n")
    calls = []
    real_statistics, real_model = style_transfer.statistics_of, style_transfer.StyleTransfer.build

    def counting_statistics(*args):
        calls.append("style statistics")
        return real_statistics(*args)

    def counting_builds(model):
        calls.append("graph")
        return real_model(model)

    monkeypatch.setattr(style_transfer, "statistics_of", counting_statistics)
    monkeypatch.setattr(style_transfer.StyleTransfer, "build", counting_builds)
    code, out, err = run_main(["--vgg", vgg19_mat[0], "--content", str(folder), images["content"], "--style",
                               images["style"], "--width", "40", "--height", "32", "--iterations", "2"], capsys)
    assert code == 0, err
    assert calls == ["graph", "style statistics"]  # one graph serves all, the style's statistics are computed once
    for name in ("a", "b", "content"):
        assert Image.open(os.path.join("outputs", name, "final.png")).size == (40, 32)
        assert os.path.exists(os.path.join("checkpoints", "style_transfer", name, "run.json"))
        assert scalar_series(os.path.join(LOG_DIR, name), "total_loss")
    assert not os.path.exists("outputs/final.png")


def test_several_contents_a_bad_one_fails_alone(workdir, tmp_path_factory, capsys, vgg19_mat, images):
    import json
    import os

    folder = tmp_path_factory.mktemp("mixed")
    (folder / "broken.jpg").write_text("not a picture\n")
    code, _, err = run_main(["--vgg", vgg19_mat[0], "--content", images["content"], str(folder / "broken.jpg"),
                             "--style", images["style"], "--width", "40", "--height", "32", "--iterations", "1"],
                            capsys)
    assert code == 2 and "broken.jpg" in err and len(err.strip().splitlines()) == 1
    entries = [json.loads(line) for line in open("outputs/manifest-0-of-1.jsonl")]
    assert [(entry["name"], entry["status"]) for entry in entries] == [("broken", "failed"), ("content", "done")]
    assert os.path.exists("outputs/content/final.png") and not os.path.exists("outputs/broken")
    code, _, err = run_main(["--vgg", vgg19_mat[0], "--content", images["content"], images["content"],
                             "--style", images["style"]], capsys)
    assert code == 2 and "several content images are named" in err and "content.jpg" in err


def test_fast_sets_lbfgs_coarse_to_fine_and_what_is_given_still_wins():
    from runner import options

    fast = options.parse_args(["--fast"])
    assert (fast.optimizer, fast.scales, fast.scale_steps, fast.iterations) == (
        "lbfgs", [0.125, 0.25, 0.5, 1.0], [20], 67)
    given = options.parse_args(["--fast", "--iterations", "80", "--optimizer", "adam"])
    assert (given.optimizer, given.scales, given.iterations) == ("adam", [0.125, 0.25, 0.5, 1.0], 80)
    assert options.parse_args([]).optimizer == "adam"  # the defaults stay CS20's


def test_a_fast_run_is_recorded_as_what_it_ran(workdir, capsys, vgg19_mat, images):
    import json

    code, out, err = run_main(["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"],
                               "--width", "40", "--height", "32", "--fast"], capsys)
    assert code == 0, err
    assert "Scale 1/4: 5x4" in out and "Scale 4/4: 40x32" in out
    record = json.load(open("checkpoints/style_transfer/run.json"))
    assert (record["optimizer"], record["scales"], record["scale_steps"]) == (
        "lbfgs", [0.125, 0.25, 0.5, 1.0], [20, 20, 20])


@pytest.mark.parametrize("more, option", [
    (["--frame-steps", "5"], "--frame-steps"), (["--frames", "1:2"], "--frames"), (["--fps", "12"], "--fps"),
    (["--temporal-weight", "5"], "--temporal-weight")])
def test_a_films_options_given_with_a_still_image_are_refused(workdir, capsys, base_args, more, option):
    code, out, err = run_main([*base_args, *more], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{option} is for films, not still images" in err and "Traceback" not in err
    assert os.listdir(workdir) == []


def test_a_films_option_given_with_a_folder_of_still_images_is_refused_once_before_any_item(
        workdir, tmp_path_factory, capsys, base_args):
    from conftest import write_image

    folder = tmp_path_factory.mktemp("stills")
    for seed in range(2):
        write_image(folder / f"photo{seed}.png", 80, 60, seed=30 + seed)
    code, out, err = run_main([*base_args[:2], "--content", str(folder), *base_args[4:], "--frame-steps", "5"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--frame-steps is for films, not still images" in err
    assert os.listdir(workdir) == []  # no manifest, no item's folder


def test_a_tile_overlap_for_an_image_that_is_not_tiled_is_refused(workdir, capsys, base_args):
    code, out, err = run_main([*base_args, "--tile-overlap", "8", "--iterations", "1"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--tile-overlap is for tiled images" in err and "--tile" in err


@pytest.mark.slow
def test_a_tiled_data_set_builds_each_of_its_graphs_once(workdir, tmp_path_factory, capsys, monkeypatch, vgg19_mat,
                                                         images):
    """A tiled image's plan needs two graphs (its coarse scale's, its tiles'): the items of a data set share them."""
    import style_transfer
    from conftest import write_image

    folder = tmp_path_factory.mktemp("tiled-contents")
    for seed in range(3):
        write_image(folder / f"photo{seed}.png", 96, 64, seed=20 + seed)
    builds = []
    real_build = style_transfer.StyleTransfer.build
    monkeypatch.setattr(style_transfer.StyleTransfer, "build", lambda model: builds.append(model) or real_build(model))
    code, out, err = run_main(["--vgg", vgg19_mat[0], "--content", str(folder), "--style", images["style"], "--width",
                               "96", "--height", "64", "--tile", "64", "--tile-overlap", "8", "--iterations", "4"],
                              capsys)
    assert code == 0, err
    assert out.count("Tile 2/2") == 3 and len(builds) == 2
