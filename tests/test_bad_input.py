"""Bad input and faults: refused with exit 2 and one line, nothing earlier lost; odd but valid images work."""

import functools
import glob
import hashlib
import http.server
import io
import os
import resource
import threading

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import utils
from conftest import run_main, run_script
from test_cli import assert_refused
from test_run import CHECKPOINT_DIR


def encoded(image, format, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def fuzz_cases(count, seed=0):
    """Byte strings no image reader should accept: noise, noise behind real magic numbers, truncated PNGs and
    JPEGs, PNGs with a flipped bit in their header chunk (its CRC no longer matches)."""
    rng = np.random.default_rng(seed)
    picture = Image.fromarray(rng.uniform(0, 255, (12, 16, 3)).astype(np.uint8)).resize((64, 48))
    png, jpeg = encoded(picture, "PNG"), encoded(picture, "JPEG")
    for index in range(count):
        kind = index % 5
        if kind == 0:
            yield rng.bytes(int(rng.integers(0, 4096)))
        elif kind == 1:
            yield (png, jpeg)[index % 2][:int(rng.integers(2, 24))] + rng.bytes(int(rng.integers(0, 2048)))
        elif kind in (2, 3):
            original = png if kind == 2 else jpeg
            yield original[:int(rng.integers(0, int(len(original) * 0.9)))]
        else:
            mutated = bytearray(png)
            mutated[int(rng.integers(8, 33))] ^= 1 << int(rng.integers(0, 8))
            yield bytes(mutated)


def test_hundreds_of_random_and_mutated_images_are_refused(workdir, capsys, base_args):
    path = workdir / "content.png"
    for number, data in enumerate(fuzz_cases(300)):
        path.write_bytes(data)
        code, out, err = run_main([*base_args, "--content", str(path), "--iterations", "1"], capsys)
        assert code == 2, (number, data[:40], err)
        assert len(err.strip().splitlines()) == 1 and "content image" in err and "Traceback" not in err
    assert sorted(os.listdir(workdir)) == ["content.png"]


def test_a_size_too_large_for_memory_is_refused_with_one_that_fits(workdir, capsys, base_args):
    code, out, err = run_main([*base_args, "--width", "100000", "--height", "80000"], capsys)
    assert_refused(code, out, err, "--width 100000 --height 80000 needs about", "even in tiles", "GB is available",
                   "at most about")
    width, height = map(int, err.split("at most about ")[1].split()[0].split("x"))
    assert 0 < width < 100000 and abs(width / height - 100000 / 80000) < 0.01
    assert os.listdir(workdir) == []


# ---------------------------------------------------------------------------------------------------
# Odd but valid images.

def two_tone(width, height):
    """Red top half, blue bottom half: tells upright from rotated."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:height // 2, :, 0] = 255
    pixels[height // 2:, :, 2] = 255
    return Image.fromarray(pixels)


def odd_images(folder):
    upright = two_tone(80, 60)
    rgba = upright.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 80, dtype=np.uint8), (60, 1))))
    sixteen = Image.fromarray((np.tile(np.linspace(0, 65535, 80), (60, 1))).astype(np.uint16))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned; show the stored image rotated 90° clockwise
    stored_sideways = upright.transpose(Image.Transpose.ROTATE_90)  # 60 wide, 80 high, as a sideways camera stores it
    palette_transparent = upright.convert("P")
    cases = {
        "greyscale.png": (upright.convert("L"), {}),
        "rgba.png": (rgba, {}),
        "palette.gif": (upright.convert("P"), {}),
        "palette-transparent.png": (palette_transparent, {"transparency": 0}),
        "cmyk.jpg": (upright.convert("CMYK"), {}),
        "sixteen-bit.png": (sixteen, {}),
        "exif-rotated.jpg": (stored_sideways, {"exif": exif, "quality": 95}),
    }
    paths = {}
    for name, (image, options) in cases.items():
        paths[name] = str(folder / name)
        image.save(paths[name], **options)
    return paths


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return odd_images(tmp_path_factory.mktemp("odd"))


def test_odd_images_load_as_upright_rgb(odd):
    for name, path in odd.items():
        pixels = utils.load_image(path, 40, 30, "content image")
        assert pixels.shape == (30, 40, 3) and pixels.dtype == np.float32, name
        assert 0 <= pixels.min() and pixels.max() <= 255, name
    upright = utils.load_image(odd["exif-rotated.jpg"], 40, 30)
    assert upright[:10, :, 0].mean() > 200 and upright[:10, :, 2].mean() < 50  # red on top
    assert upright[-10:, :, 2].mean() > 200 and upright[-10:, :, 0].mean() < 50  # blue below
    rgba = utils.load_image(odd["rgba.png"], 40, 30)
    assert rgba[:, 0].min() > 240  # fully transparent left edge: white, not black
    sixteen = utils.load_image(odd["sixteen-bit.png"], 40, 30)
    assert sixteen[:, 0].mean() < 20 and sixteen[:, -1].mean() > 235  # the full 16-bit range, scaled


@pytest.mark.parametrize("name", ["greyscale.png", "rgba.png", "palette.gif", "palette-transparent.png",
                                  "cmyk.jpg", "sixteen-bit.png", "exif-rotated.jpg"])
def test_odd_images_run_end_to_end(workdir, capsys, base_args, odd, name):
    code, out, err = run_main([*base_args, "--content", odd[name], "--style", odd[name], "--iterations", "1"],
                              capsys)
    assert code == 0, err
    result = np.asarray(Image.open("outputs/final.png"), dtype=float)
    assert result.shape == (32, 40, 3)
    if name == "exif-rotated.jpg":  # started from 0.4 × content: still red above blue after one step
        assert result[:8, :, 0].mean() > result[-8:, :, 0].mean() + 50
        assert result[-8:, :, 2].mean() > result[:8, :, 2].mean() + 50


# ---------------------------------------------------------------------------------------------------
# Full disks: earlier checkpoints and images stay intact.

@pytest.mark.slow
def test_a_full_disk_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, vgg19_mat, images):
    args = ["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"],
            "--width", "128", "--height", "96", "--save-every", "2"]
    code, _, err = run_script([*args, "--iterations", "2"], cwd=tmp_path)
    assert code == 0, err
    before = {name: (tmp_path / "outputs" / name).read_bytes() for name in ("2.png", "final.png")}

    def small_file_limit():  # every file write past 200 kB fails (EFBIG): the 440 kB checkpoint does
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    import subprocess
    import sys

    from conftest import SCRIPT
    process = subprocess.run([sys.executable, SCRIPT, *args, "--iterations", "4"], cwd=tmp_path, text=True,
                             capture_output=True, preexec_fn=small_file_limit, timeout=300)
    assert process.returncode == 2, process.stderr
    assert len(process.stderr.strip().splitlines()) == 1 and "Traceback" not in process.stderr
    assert "could not write the checkpoint and image of step 4" in process.stderr
    assert "Detected at node" not in process.stderr and "defined at" not in process.stderr  # the cause only
    assert "ckpt-2 is intact" in process.stderr
    os.chdir(tmp_path)
    assert os.path.basename(tf.train.latest_checkpoint(CHECKPOINT_DIR)) == "ckpt-2"
    assert not glob.glob(os.path.join(CHECKPOINT_DIR, "ckpt-4*"))  # nothing half-written left behind
    for name, data in before.items():
        assert (tmp_path / "outputs" / name).read_bytes() == data
    code, out, err = run_script([*args, "--iterations", "4"], cwd=tmp_path)  # space again: it resumes
    assert code == 0 and "Resuming from step 2" in out, err


def test_a_full_disk_while_writing_an_image_keeps_the_earlier_image(workdir, capsys, base_args, monkeypatch):
    code, _, err = run_main([*base_args, "--iterations", "2", "--save-every", "2"], capsys)
    assert code == 0, err
    before = {name: (workdir / "outputs" / name).read_bytes() for name in ("2.png", "final.png")}
    real_save = Image.Image.save

    def save_half_then_fail(image, target, *args, **kwargs):
        real_save(image, target, *args, **kwargs)
        with open(target, "r+b") as file:
            file.truncate(10)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", save_half_then_fail)
    code, out, err = run_main([*base_args, "--iterations", "2", "--output-dir", "outputs"], capsys)
    assert_refused(code, out, err, "could not write the final image outputs/final.png", "No space left on device",
                   "ckpt-2 is intact")
    for name, data in before.items():
        assert (workdir / "outputs" / name).read_bytes() == data
    assert not glob.glob(str(workdir / "outputs" / "*.tmp"))


def test_a_failed_write_of_the_tensorboard_events_is_one_line(workdir, capsys, base_args, monkeypatch):
    """TensorFlow's event writer reports a write its file system refused (a full disk, a file-size limit) as what
    its status maps to: IndexError for "File too large", which ended the run in a traceback."""
    assert run_main([*base_args, "--iterations", "2", "--save-every", "1"], capsys)[0] == 0

    def refused(writer):
        raise IndexError("graphs/style_transfer/events.out.tfevents.1.vm; File too large")

    monkeypatch.setattr(tf.summary.FileWriter, "flush", refused)
    code, out, err = run_main([*base_args, "--iterations", "3", "--save-every", "1"], capsys)
    assert_refused(code, out, err, "could not write the checkpoint and image of step 3", "File too large",
                   "ckpt-2 is intact")


# ---------------------------------------------------------------------------------------------------
# Downloads, from a real HTTP server on the loopback address.

class Files(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; a path under /cut/ announces the whole file but sends only half of it."""

    def do_GET(self):
        if self.path.startswith("/cut/"):
            data = open(os.path.join(self.directory, self.path[5:]), "rb").read()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def file_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Files, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def serve_default(monkeypatch, server, data, url_path, file_hash=None, size=None):
    folder, address = server
    (folder / "weights.mat").write_bytes(data)
    download = utils.Download(f"{address}/{url_path}", size or len(data),
                              file_hash or hashlib.sha256(data).hexdigest(), "sha256")
    monkeypatch.setitem(utils.DEFAULT_DOWNLOADS, "imagenet-vgg-verydeep-19.mat", download)


def test_a_download_is_checked_then_renamed(workdir, monkeypatch, file_server):
    data = os.urandom(300_000)
    serve_default(monkeypatch, file_server, data, "weights.mat")
    utils.fetch_if_missing("imagenet-vgg-verydeep-19.mat", "VGG-19 weights", "--vgg")
    assert open("imagenet-vgg-verydeep-19.mat", "rb").read() == data
    assert os.listdir(workdir) == ["imagenet-vgg-verydeep-19.mat"]


@pytest.mark.parametrize("fault", ["checksum", "size", "cut"])
def test_a_bad_download_leaves_nothing_and_says_what_was_expected(workdir, monkeypatch, file_server, fault):
    data = os.urandom(300_000)
    serve_default(monkeypatch, file_server, data, "cut/weights.mat" if fault == "cut" else "weights.mat",
                  file_hash="0" * 64 if fault == "checksum" else None, size=12345 if fault == "size" else None)
    with pytest.raises(utils.FixableError) as refused:
        utils.fetch_if_missing("imagenet-vgg-verydeep-19.mat", "VGG-19 weights", "--vgg")
    message = str(refused.value)
    assert "could not download VGG-19 weights" in message and "--vgg" in message
    assert "expected" in message and utils.DEFAULT_DOWNLOADS["imagenet-vgg-verydeep-19.mat"].file_hash in message
    assert os.listdir(workdir) == []  # neither the file nor a .part
    # The next try starts afresh and succeeds once the server is right.
    serve_default(monkeypatch, file_server, data, "weights.mat")
    utils.fetch_if_missing("imagenet-vgg-verydeep-19.mat", "VGG-19 weights", "--vgg")
    assert open("imagenet-vgg-verydeep-19.mat", "rb").read() == data
