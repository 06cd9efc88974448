"""Shared fixtures: VGG .mat files and images written here (the tests never download), and CLI runners."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as style_transfer.py sets it, for tests importing TF first
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ["STYLE_TRANSFER_CACHE"] = tempfile.mkdtemp(prefix="style-transfer-cache-")  # not the user's own

import numpy as np
import pytest
from PIL import Image

import matconvnet

# The weights cache in STYLE_TRANSFER_CACHE is as large as the weights (765 MB for the test file): it goes with the
# process that made it (each xdist worker makes its own), not left in the temporary folder run after run.
atexit.register(shutil.rmtree, os.environ["STYLE_TRANSFER_CACHE"], ignore_errors=True)

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT)
SCRIPT = os.path.join(PROJECT, "style_transfer.py")

SMALL = ["--width", "40", "--height", "32"]  # big enough to reach conv5_1 (four 2x2 poolings)


@pytest.fixture(scope="session")
def vgg19_mat(tmp_path_factory):
    """A current-layout VGG-19 .mat with real names and shapes and random weights: (path, weights)."""
    path = tmp_path_factory.mktemp("weights") / "vgg19.mat"
    weights = matconvnet.write_vgg_mat(str(path), layout="current", seed=1)
    return str(path), weights


def write_image(path, width, height, seed):
    """A smooth random colour image (so resizing and the losses have something to work on)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (height // 4 + 1, width // 4 + 1, 3)).astype(np.uint8)
    Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC).save(path)
    return str(path)


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    return {"content": write_image(folder / "content.jpg", 80, 60, seed=2),
            "style": write_image(folder / "style.png", 64, 64, seed=3)}


@pytest.fixture(autouse=True)
def _back_to_the_starting_folder():
    """Some tests change into their run's folder: the next starts where pytest did (sbatch, say, submits from it)."""
    folder = os.getcwd()
    yield
    os.chdir(folder)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Each test runs in its own empty folder, where the default output folders land."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def base_args(vgg19_mat, images):
    """The options of a small, quick run on the test weights and images."""
    return ["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"], *SMALL]


def run_main(argv, capsys):
    """style_transfer.main in this process: (exit code, stdout, stderr)."""
    import style_transfer

    try:
        code = style_transfer.main(argv)
    except SystemExit as exit_:  # argparse refuses options this way
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def start_script(argv, cwd, **kwargs):
    """style_transfer.py as a user runs it, in its own process."""
    return subprocess.Popen([sys.executable, SCRIPT, *argv], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def run_script(argv, cwd, timeout=300):
    process = start_script(argv, cwd)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class OutputLines:
    """A started process's stdout, read line by line as it comes (in a thread of its own), so that a test can wait
    for a line: `lines = OutputLines(process)`, `wait_for(lambda: lines.has("step 3/"), ...)`, `lines.text()`."""

    def __init__(self, process):
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(process.stdout), daemon=True)
        self.reader.start()

    def has(self, text):
        return any(text in line for line in list(self.lines))

    def text(self):
        """Everything the process wrote, once it has ended."""
        self.reader.join(timeout=60)
        return "".join(self.lines)
