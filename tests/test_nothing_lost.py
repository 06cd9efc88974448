"""Nothing of the user's is overwritten, no bad state is saved over a good one, no traceback from a damaged file:
the promises of the README's "What is guaranteed" section, one test (at least) each."""

import glob
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import load_vgg
import matconvnet
from conftest import SCRIPT, run_main, run_script, start_script, wait_for, write_image
from test_cli import assert_refused
from test_run import CHECKPOINT_DIR, LOG_DIR, scalar_series

# ---------------------------------------------------------------------------------------------------
# 1. The user's files are never written over.


@pytest.mark.parametrize("which", ["content", "style", "vgg", "a link to the content"])
def test_an_output_that_is_an_input_is_refused(workdir, capsys, base_args, images, vgg19_mat, which):
    own = {"content": str(shutil.copy(images["content"], workdir / "photo.jpg")),
           "style": str(shutil.copy(images["style"], workdir / "style.png"))}
    target = {"content": own["content"], "style": own["style"], "vgg": vgg19_mat[0]}.get(which)
    if which == "a link to the content":
        target = str(workdir / "result.jpg")
        os.symlink(own["content"], target)
    before = {path: open(path, "rb").read() for path in [*own.values(), vgg19_mat[0]]}
    code, out, err = run_main([*base_args, "--content", own["content"], "--style", own["style"], "--output", target,
                               "--iterations", "1"], capsys)
    assert_refused(code, out, err, target, "is the input", "--output")
    assert {path: open(path, "rb").read() for path in before} == before
    assert not os.path.exists("checkpoints") and not os.path.exists("outputs")


def test_files_in_the_output_folder_that_the_tool_did_not_write_are_refused(workdir, capsys, base_args):
    os.makedirs("holiday")
    for name in ("5.png", "10.png"):
        write_image(workdir / "holiday" / name, 20, 20, seed=int(name[:-4]))
    before = {name: open(os.path.join("holiday", name), "rb").read() for name in os.listdir("holiday")}
    code, out, err = run_main([*base_args, "--output-dir", "holiday", "--iterations", "10", "--save-every", "5"],
                              capsys)
    assert_refused(code, out, err, os.path.join("holiday", "10.png"), "not written by style_transfer.py", "move it")
    assert {name: open(os.path.join("holiday", name), "rb").read() for name in os.listdir("holiday")} == before
    assert not os.path.exists("checkpoints")

    # Files the tool wrote itself are replaced: a rerun after --restart writes over them.
    code, _, err = run_main([*base_args, "--output-dir", "outputs", "--iterations", "2", "--save-every", "1"], capsys)
    assert code == 0, err
    code, _, err = run_main([*base_args, "--output-dir", "outputs", "--iterations", "2", "--save-every", "1",
                             "--style-weight", "2", "--restart"], capsys)
    assert code == 0, err


@pytest.mark.slow
def test_a_run_never_replaces_another_run_folders_images_in_a_shared_output_folder(workdir, capsys, base_args):
    """Two runs with their own --checkpoint-dir and the default --output-dir: the second replaced the first's step
    images and final image (both carried the tool's mark). The mark names the run folder now."""
    small = ["--iterations", "2", "--save-every", "1"]
    code, _, err = run_main([*base_args, *small], capsys)
    assert code == 0, err
    folder_id = json.load(open(os.path.join(CHECKPOINT_DIR, "run.json")))["folder_id"]
    with Image.open(os.path.join("outputs", "final.png")) as image:
        assert image.getexif()[0x0131].endswith(folder_id)  # EXIF Software, read back by Pillow
    before = {name: open(os.path.join("outputs", name), "rb").read() for name in os.listdir("outputs")}

    code, out, err = run_main([*base_args, *small, "--checkpoint-dir", "ck2", "--style-weight", "2"], capsys)
    assert_refused(code, out, err, "outputs/", "written by another run", "--output-dir")
    assert {name: open(os.path.join("outputs", name), "rb").read() for name in os.listdir("outputs")} == before
    assert not os.path.exists("ck2")
    # With its own --output-dir it runs, its final image there too (final.png in --output-dir unless --output).
    code, _, err = run_main([*base_args, *small, "--checkpoint-dir", "ck2", "--output-dir", "second"], capsys)
    assert code == 0, err
    assert sorted(os.listdir("second")) == ["1.png", "2.png", "final.png"]
    assert {name: open(os.path.join("outputs", name), "rb").read() for name in os.listdir("outputs")} == before

    # The first run's own folder, started over, replaces them, and keeps its id.
    code, _, err = run_main([*base_args, *small, "--seed", "7", "--restart"], capsys)
    assert code == 0, err
    assert open(os.path.join("outputs", "final.png"), "rb").read() != before["final.png"]
    assert json.load(open(os.path.join(CHECKPOINT_DIR, "run.json")))["folder_id"] == folder_id

    # An image of an earlier version, whose mark names no run folder, is replaced by any run, as before.
    earlier = Image.open(os.path.join("outputs", "final.png"))
    mark = Image.Exif()
    mark[0x0131] = "style_transfer.py (neural style transfer, CS20)"
    earlier.save("earlier.png", exif=mark)
    code, _, err = run_main([*base_args, *small, "--checkpoint-dir", "ck2", "--output-dir", "second", "--output",
                             "earlier.png"], capsys)
    assert code == 0, err
    with Image.open("earlier.png") as image:
        assert image.getexif()[0x0131].endswith(json.load(open(os.path.join("ck2", "run.json")))["folder_id"])


# ---------------------------------------------------------------------------------------------------
# 2. A diverging run stops before it saves anything non-finite.

def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(workdir, capsys, base_args):
    code, out, err = run_main([*base_args, "--lr", "1e30", "--iterations", "30", "--save-every", "1", "--keep", "3",
                               "--keep-best"], capsys)
    assert_refused(code, out, err, "diverged", "lower --lr (now 1e+30)", "--restart")
    kept = err.split("checkpoint ")[1].split(",")[0]
    assert os.path.basename(kept).startswith("ckpt-") and os.path.exists(kept + ".index")
    for path in glob.glob(os.path.join(CHECKPOINT_DIR, "ckpt-*.index")):
        reader = tf.train.load_checkpoint(path[:-len(".index")])
        for name in reader.get_variable_to_shape_map():
            assert np.isfinite(reader.get_tensor(name)).all(), (path, name)
    assert not os.path.exists("outputs/final.png")
    steps_saved = sorted(int(name[:-4]) for name in os.listdir("outputs") if name[:-4].isdigit())
    assert steps_saved and steps_saved[-1] < 30
    assert all(np.isfinite(value) for _, value in scalar_series(LOG_DIR, "total_loss"))
    best = json.load(open(os.path.join(CHECKPOINT_DIR, "best.json")))
    assert np.isfinite(best["loss"])


# ---------------------------------------------------------------------------------------------------
# 3 and 4. Damaged weights are refused at load; a damaged weights cache is rebuilt.

def damaged_weights(clean, layer="conv3_1", value=np.nan):
    weights = {name: (kernel.copy(), bias.copy()) for name, (kernel, bias) in clean.items()}
    weights[layer][0][1, 1, 0, 0] = value
    return weights


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_weights_with_nan_or_inf_are_refused_naming_the_layer(workdir, capsys, base_args, vgg19_mat, value):
    path = str(workdir / "damaged.mat")
    matconvnet.write_vgg_mat(path, weights=damaged_weights(vgg19_mat[1], value=value))
    code, out, err = run_main([*base_args, "--vgg", path], capsys)
    assert_refused(code, out, err, path, "conv3_1", "NaN or infinite")
    assert os.listdir(workdir) == ["damaged.mat"]


def test_keras_weights_with_nan_are_refused_naming_the_layer(workdir, capsys, base_args, vgg19_mat):
    from keras_weights import write_keras_vgg_h5

    path = str(workdir / "damaged.h5")
    write_keras_vgg_h5(path, damaged_weights(vgg19_mat[1], layer="conv4_2"))
    code, out, err = run_main([*base_args, "--vgg", path], capsys)
    assert_refused(code, out, err, "conv4_2", "NaN or infinite")


def cached_arrays(cache):
    with np.load(cache) as cached:
        return {key: cached[key] for key in cached.files}


def truncate(cache, arrays):
    data = open(cache, "rb").read()
    open(cache, "wb").write(data[:len(data) // 2])


def flip_a_bit(cache, arrays):
    data = bytearray(open(cache, "rb").read())
    data[len(data) // 2] ^= 0x10
    open(cache, "wb").write(bytes(data))


def wrong_shape(cache, arrays):
    arrays["conv2_1/kernel"] = arrays["conv2_1/kernel"][:, :, :32, :]
    np.savez(cache, **arrays)


def nan_value(cache, arrays):
    arrays["conv5_1/bias"][3] = np.nan
    np.savez(cache, **arrays)


def another_checksum(cache, arrays):
    arrays["conv1_1/bias"][0] += 1  # a readable cache whose values no longer match what was written
    np.savez(cache, **arrays)


@pytest.mark.parametrize("damage", [truncate, flip_a_bit, wrong_shape, nan_value, another_checksum])
def test_a_damaged_weights_cache_is_read_past_and_rebuilt(workdir, capsys, base_args, vgg19_mat, damage):
    path = str(shutil.copy(vgg19_mat[0], workdir / "vgg19.mat"))  # a weights file of its own: a cache of its own
    expected = load_vgg.load_weights(path)
    cache = load_vgg._cache_file(path)
    damage(cache, cached_arrays(cache))
    code, out, err = run_main([*base_args, "--vgg", path, "--iterations", "1"], capsys)
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "warning: the weights cache" in lines[0] and "damaged" in lines[0], err
    rebuilt = load_vgg.load_weights(path)  # the cache written again, and read back whole
    assert rebuilt.fingerprint == expected.fingerprint
    assert cached_arrays(cache)["fingerprint"] == expected.fingerprint
    assert capsys.readouterr().err == ""  # no warning the second time


# ---------------------------------------------------------------------------------------------------
# 5 and 6. A damaged checkpoint pointer, and an unreadable full-size checkpoint with coarse ones before it.

@pytest.mark.parametrize("pointer", [b"", b"garbage \x00\x01\x02 not a checkpoint state\n"])
def test_an_unreadable_checkpoint_pointer_falls_back_to_the_checkpoint_files(workdir, capsys, base_args, pointer):
    args = [*base_args, "--save-every", "2", "--log-every", "2"]
    code, _, err = run_main([*args, "--iterations", "6"], capsys)
    assert code == 0, err
    open(os.path.join(CHECKPOINT_DIR, "checkpoint"), "wb").write(pointer)
    code, out, err = run_main([*args, "--iterations", "8"], capsys)
    assert code == 0, err
    assert "Resuming from step 6" in out and "cannot be read" in err and "Traceback" not in err
    assert [step for step, _ in scalar_series(LOG_DIR, "total_loss")] == [1, 2, 4, 6, 8]
    assert not glob.glob(os.path.join(LOG_DIR, "replaced-*"))
    assert os.path.basename(tf.train.latest_checkpoint(CHECKPOINT_DIR)) == "ckpt-8"


@pytest.mark.slow
def test_an_unreadable_full_size_checkpoint_resumes_from_the_coarse_one_before(tmp_path, base_args, capsys,
                                                                               monkeypatch):
    from test_scales import SCALED, pixels, rewind

    straight, damaged = tmp_path / "straight", tmp_path / "damaged"
    straight.mkdir()
    monkeypatch.chdir(straight)
    code, _, err = run_main([*base_args, *SCALED], capsys)
    assert code == 0, err
    shutil.copytree(straight, damaged)
    rewind(damaged, 7)  # as if it crashed after the first full-size checkpoint...
    data = glob.glob(str(damaged / CHECKPOINT_DIR / "ckpt-7.data-*"))[0]
    open(data, "r+b").truncate(100)  # ...whose data the disk then lost
    monkeypatch.chdir(damaged)
    code, out, err = run_main([*base_args, *SCALED], capsys)
    assert code == 0, err
    assert "ckpt-7 cannot be read" in err and "Resuming from step 6" in out
    np.testing.assert_array_equal(pixels(damaged / "outputs/final.png"), pixels(straight / "outputs/final.png"))


# ---------------------------------------------------------------------------------------------------
# 7. Faults at start-up and during saves: one line, no traceback.

@pytest.mark.slow
def test_a_full_disk_at_start_is_one_line(tmp_path, vgg19_mat, images):
    def nearly_full_disk():  # any file write past 100 bytes fails (EFBIG): run.json is the first to
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))

    args = ["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"], "--width", "40",
            "--height", "32", "--iterations", "2"]
    process = subprocess.run([sys.executable, SCRIPT, *args], cwd=tmp_path, text=True, capture_output=True,
                             preexec_fn=nearly_full_disk, timeout=300)
    assert process.returncode == 2, process.stderr
    assert len(process.stderr.strip().splitlines()) == 1 and "Traceback" not in process.stderr
    assert "cannot write" in process.stderr or "could not write" in process.stderr


@pytest.mark.slow
def test_ctrl_c_while_tensorflow_loads_is_one_line(tmp_path, base_args):
    process = start_script(base_args, cwd=tmp_path)
    maps = f"/proc/{process.pid}/maps"
    wait_for(lambda: process.poll() is not None or "tensorflow" in open(maps).read(), 60, "TensorFlow to load")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "interrupted" in err
    assert not os.path.exists(tmp_path / "checkpoints")


def test_a_very_large_image_is_one_warning_in_our_words(workdir, capsys, base_args, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4500)  # the content's 80x60 counts as very large (the style's
    #                                                      64x64 does not), yet below Pillow's refusal at twice that
    code, out, err = run_main([*base_args, "--iterations", "1"], capsys)
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: content image") and "megapixels" in lines[0], err


# ---------------------------------------------------------------------------------------------------
# 8. One process at a time in a run folder.

@pytest.mark.slow
def test_a_second_process_on_the_same_folder_is_refused_and_a_dead_holders_lock_is_taken_over(tmp_path, base_args):
    args = [*base_args, "--iterations", "100000", "--save-every", "2", "--log-every", "1000"]
    first = start_script(args, cwd=tmp_path)
    try:
        wait_for(lambda: first.poll() is not None or glob.glob(str(tmp_path / CHECKPOINT_DIR / "ckpt-*.index")), 120,
                 "a checkpoint")
        code, out, err = run_script(args, cwd=tmp_path)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"in use by process {first.pid}" in err and "--checkpoint-dir" in err
    finally:
        first.kill()  # SIGKILL: the lock is never released by the holder itself
        first.communicate()
    latest = int(tf.train.latest_checkpoint(str(tmp_path / CHECKPOINT_DIR)).rsplit("-", 1)[1])
    code, out, err = run_script([*args[:-6], "--iterations", str(latest + 1), "--save-every", "2"], cwd=tmp_path)
    assert code == 0, err
    assert f"Resuming from step {latest}" in out


# ---------------------------------------------------------------------------------------------------
# 9. Folder names with glob characters.

def bracket_series(log_dir):
    found = []
    for path in sorted(glob.glob(os.path.join(glob.escape(log_dir), "events.out.tfevents.*"))):
        for event in tf.train.summary_iterator(path):
            found += [event.step for value in event.summary.value if value.tag == "total_loss"]
    return found


@pytest.mark.slow
def test_a_log_folder_named_like_a_pattern_restarts_and_resumes_cleanly(workdir, capsys, base_args):
    log_dir = os.path.join("runs", "run[1]")
    args = [*base_args, "--log-dir", log_dir, "--save-every", "2", "--log-every", "1"]
    code, _, err = run_main([*args, "--iterations", "2"], capsys)
    assert code == 0, err
    code, _, err = run_main([*args, "--iterations", "2", "--restart"], capsys)
    assert code == 0, err
    assert bracket_series(log_dir) == [1, 2]  # the earlier run's events moved aside: no step twice
    assert glob.glob(os.path.join(glob.escape(log_dir), "replaced-*", "events.out.tfevents.*"))

    code, _, err = run_main([*args, "--iterations", "4"], capsys)
    assert code == 0, err
    for path in glob.glob(os.path.join(CHECKPOINT_DIR, "ckpt-4.*")):
        os.remove(path)
    tf.train.update_checkpoint_state(CHECKPOINT_DIR, os.path.join(CHECKPOINT_DIR, "ckpt-2"))
    code, out, err = run_main([*args, "--iterations", "4"], capsys)
    assert code == 0 and "Resuming from step 2" in out, err
    assert bracket_series(log_dir) == [1, 2, 3, 4]  # steps 3 and 4 of the crashed try dropped, then run again


# ---------------------------------------------------------------------------------------------------
# 10. A log folder shared by runs of other folders (--log-dir's default is one folder for every run).

def loss_steps(log_dir, run_tag=""):
    """The steps of the total-loss events in log_dir's event files (those of one run, with its tag)."""
    found = []
    for name in sorted(os.listdir(log_dir)):
        if name.startswith("events.out.tfevents.") and run_tag in name and not name.endswith(".tmp"):
            for event in tf.train.summary_iterator(os.path.join(log_dir, name)):
                found += [event.step for value in event.summary.value if value.tag == "total_loss"]
    return found


@pytest.mark.slow  # whole runs of several seconds: out of the quick subset
def test_a_resume_or_a_new_run_touches_only_its_own_runs_events(workdir, capsys, base_args):
    """A resume cut every event file in --log-dir back to its step, and a new run put them all aside: another
    run's sharing the folder lost its later steps. Now each run's files carry its folder's tag, and only those are
    cut or put aside; a killed cut's temporary, and a user's file named like an event file, are passed over."""
    from runner import run_folder

    args = [*base_args, "--save-every", "1", "--log-every", "1"]
    assert run_main([*args, "--iterations", "2", "--checkpoint-dir", "ck/a", "--output-dir", "out/a"], capsys)[0] == 0
    assert run_main([*args, "--iterations", "4", "--checkpoint-dir", "ck/b", "--output-dir", "out/b"], capsys)[0] == 0
    a, b = run_folder.events_tag("ck/a"), run_folder.events_tag("ck/b")
    assert a != b  # the same problem, run in two folders
    own = [name for name in os.listdir(LOG_DIR) if a in name]
    with open(os.path.join(LOG_DIR, own[0]), "ab") as file:
        file.write(b"\x00" * 7)  # a record cut short by a crash: this run's file is cut back
    with open(os.path.join(LOG_DIR, f"{own[0]}.{socket.gethostname()}.999999999.tmp"), "wb") as file:
        file.write(b"what a killed cut left")
    with open(os.path.join(LOG_DIR, "events.out.tfevents.notes.txt"), "w") as file:
        file.write("a user's notes\n")
    code, out, err = run_main([*args, "--iterations", "3", "--checkpoint-dir", "ck/a", "--output-dir", "out/a"], capsys)
    assert code == 0, err
    assert "Resuming from step 2" in out
    assert loss_steps(LOG_DIR, a) == [1, 2, 3] and loss_steps(LOG_DIR, b) == [1, 2, 3, 4]
    code, out, err = run_main([*args, "--iterations", "1", "--checkpoint-dir", "ck/a", "--output-dir", "out/a",
                               "--restart"], capsys)
    assert code == 0, err
    assert loss_steps(LOG_DIR, a) == [] and loss_steps(LOG_DIR, run_folder.events_tag("ck/a")) == [1]
    assert loss_steps(glob.glob(os.path.join(LOG_DIR, "replaced-*"))[0], a) == [1, 2, 3]
    assert loss_steps(LOG_DIR, b) == [1, 2, 3, 4]
    assert open(os.path.join(LOG_DIR, "events.out.tfevents.notes.txt")).read() == "a user's notes\n"


def test_run_folders_of_an_earlier_version_get_tags_of_their_own(tmp_path):
    """An earlier version's run record has no run_id: two folders of the same problem hold the same bytes, and
    their event files must still not be taken for each other's."""
    from runner import run_folder

    record = json.dumps({"style": ["s.png"], "weights": "w", "width": 4, "height": 3, "style_layers": ["conv1_1"],
                         "optimizer": "adam"})
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(record)
    assert run_folder.events_tag(str(tmp_path / "a")) != run_folder.events_tag(str(tmp_path / "b"))
    assert run_folder.events_tag(str(tmp_path / "a")) == run_folder.events_tag(str(tmp_path / "a"))
    assert run_folder.events_tag(str(tmp_path / "none")) is None
