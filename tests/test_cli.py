"""The command line: defaults, and refusals that are one line on stderr, exit code 2, and write nothing."""

import os
import shutil

import pytest

from conftest import run_main


def test_help_shows_the_cs20_defaults(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one option a line, unwrapped
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0
    for default in ["content/deadpool.jpg", "styles/guernica.jpg", "imagenet-vgg-verydeep-19.mat", "333", "250",
                    "300", "conv4_2", "conv5_1", "[0.5, 1.0, 1.5, 3.0, 4.0]", "0.01", "2.0",
                    "checkpoints/style_transfer", "graphs/style_transfer", "final.png in --output-dir"]:
        assert default in out, default


def assert_refused(code, out, err, *words):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.mark.parametrize("option, value, says", [
    ("--width", "0", "at least 1"), ("--height", "-3", "at least 1"), ("--width", "wide", "not a whole number"),
    ("--iterations", "1.5", "not a whole number"), ("--lr", "nan", "finite"), ("--lr", "0", "greater than 0"),
    ("--style-weight", "inf", "finite"), ("--content-weight", "-1", "0 or more"), ("--save-every", "0", "at least 1"),
    ("--seed", "-1", "0 or more"), ("--fps", "1e-9", "from 0.1 to 1000"), ("--fps", "1e300", "from 0.1 to 1000"),
    ("--checkpoint-dir", "ck/run[1]", "may not hold")])
def test_nonsense_numbers_are_refused(workdir, capsys, base_args, option, value, says):
    code, out, err = run_main([*base_args, option, value], capsys)
    assert_refused(code, out, err, option, says)
    assert os.listdir(workdir) == []


def test_style_layer_weights_must_match_the_layers(workdir, capsys, base_args):
    code, out, err = run_main([*base_args, "--style-layer-weights", "1", "2"], capsys)
    assert_refused(code, out, err, "--style-layer-weights has 2 values for 5")


def test_unknown_layer_is_refused(workdir, capsys, base_args):
    code, out, err = run_main([*base_args, "--content-layer", "conv6_1"], capsys)
    assert_refused(code, out, err, "unknown VGG-19 layer 'conv6_1'")
    assert os.listdir(workdir) == []


def test_all_zero_loss_weights_are_refused(workdir, capsys, base_args):
    code, out, err = run_main([*base_args, "--content-weight", "0", "--style-weight", "0"], capsys)
    assert_refused(code, out, err, "nothing to optimise")


def bad_images(folder, real_jpeg):
    text = folder / "notes.jpg"
    text.write_text("not an image at all\n")
    half = folder / "half.jpg"
    half.write_bytes(open(real_jpeg, "rb").read()[:400])
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    return {"text named .jpg": str(text), "half a JPEG": str(half), "empty": str(empty),
            "missing": str(folder / "missing.jpg"), "a folder": str(folder)}


@pytest.mark.parametrize("option", ["--content", "--style"])
def test_bad_images_are_refused(workdir, tmp_path_factory, capsys, base_args, images, option):
    folder = tmp_path_factory.mktemp("bad")
    for kind, path in bad_images(folder, images["content"]).items():
        code, out, err = run_main([*base_args, option, path], capsys)
        assert_refused(code, out, err, path)
        if option == "--content" and kind == "a folder":  # several items: each fails alone, in the manifest
            assert "3 of 3 items failed" in err
            assert sorted(os.listdir(workdir / "outputs")) == ["items-0-of-1.json", "manifest-0-of-1.jsonl"]
            shutil.rmtree(workdir / "outputs"), shutil.rmtree(workdir / "checkpoints")
        assert os.listdir(workdir) == [], kind


def test_a_file_that_is_not_vgg19_is_refused(workdir, capsys, base_args, images):
    code, out, err = run_main([*base_args, "--vgg", images["style"]], capsys)
    assert_refused(code, out, err, images["style"], "not a readable MATLAB .mat file")
    assert os.listdir(workdir) == []


def test_missing_default_download_without_network_is_refused(workdir, capsys, base_args, monkeypatch):
    # A default path that is missing is downloaded; with the download failing it must say where to get it.
    import utils

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("keras.utils.get_file", no_network)
    code, out, err = run_main([*base_args, "--vgg", "imagenet-vgg-verydeep-19.mat"], capsys)
    assert_refused(code, out, err, "could not download", utils.DEFAULT_DOWNLOADS["imagenet-vgg-verydeep-19.mat"].url,
                   "--vgg", "network is unreachable")
    assert not os.path.exists("imagenet-vgg-verydeep-19.mat")
    assert not os.path.exists("imagenet-vgg-verydeep-19.mat.part")


@pytest.mark.parametrize("option", ["--output-dir", "--checkpoint-dir", "--log-dir"])
def test_a_folder_that_cannot_be_created_is_refused(workdir, capsys, base_args, option):
    (workdir / "a-file").write_text("in the way\n")
    code, out, err = run_main([*base_args, option, "a-file/sub"], capsys)
    assert_refused(code, out, err, "cannot create folder a-file/sub", "is a file", "choose another path")
    assert sorted(os.listdir(workdir)) == ["a-file"]
