"""Run folders written by earlier versions of the tool resume with this one.

tests/data/run-made-before-restructure/ is a 12-step run (40x32, checkpoints every 4, two kept, logs every 4)
made by the version before the code was split into modules, with the images beside it and the weights that
`matconvnet.write_vgg_mat(seed=1)` writes. final-at-16.png is what that version made of it at --iterations 16.
"""

import os
import shutil

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import matconvnet
from conftest import PROJECT, run_script
from test_run import scalar_series

pytestmark = pytest.mark.slow

FIXTURE = os.path.join(PROJECT, "tests", "data", "run-made-before-restructure")


def test_a_run_folder_made_before_the_restructure_resumes_to_the_same_image(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(FIXTURE, folder)
    weights = tmp_path / "vgg19.mat"
    matconvnet.write_vgg_mat(str(weights), layout="current", seed=1)
    args = ["--vgg", str(weights), "--content", "content.png", "--style", "style.png", "--width", "40",
            "--height", "32", "--save-every", "4", "--log-every", "4", "--keep", "2", "--iterations", "16",
            "--checkpoint-dir", "run/checkpoints", "--log-dir", "run/graphs", "--output-dir", "out",
            "--output", "out/final.png"]
    code, out, err = run_script(args, cwd=folder)
    assert code == 0, err
    assert "Resuming from step 12" in out
    resumed = np.asarray(Image.open(folder / "out" / "final.png"), dtype=np.int16)
    expected = np.asarray(Image.open(folder / "final-at-16.png"), dtype=np.int16)
    assert np.abs(resumed - expected).max() <= 1
    state = tf.train.get_checkpoint_state(str(folder / "run" / "checkpoints"))
    assert [os.path.basename(path) for path in state.all_model_checkpoint_paths] == ["ckpt-12", "ckpt-16"]
    assert [step for step, _ in scalar_series(str(folder / "run" / "graphs"), "total_loss")] == [1, 4, 8, 12, 16]
    assert not [name for name in os.listdir(folder / "run" / "graphs") if name.startswith("replaced-")]
