"""Options beyond CS20: output size from one side, colour preservation, smoothness, start, pooling."""

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
