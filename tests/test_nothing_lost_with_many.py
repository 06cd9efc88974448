"""Nothing lost with data sets, films and tiles: one test (at least) for each class of defect the held-out probes
found. Names into paths; outputs over inputs; what --restart deletes and what a lock opens; caches keyed and
checked; damaged records failing alone; shards that cover the data set; and the smaller ones."""

import contextlib
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image
from test_datasets import read_back
from test_video import panning_frames, write_frames

import utils
from conftest import run_main, write_image
from runner import batch, run_folder, tfrecords, tiles
from test_cli import assert_refused
from utils import FixableError

SMALL_RUN = ["--width", "40", "--height", "32", "--iterations", "2", "--save-every", "1"]


def png_bytes(width, height, seed):
    pixels = np.random.default_rng(seed).uniform(0, 255, (height, width, 3)).astype(np.uint8)
    buffer = __import__("io").BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def named_records(path, names):
    """A TFRecord file in the common layout whose records carry these image/filename values."""
    tfrecords.write_records(str(path), [tfrecords.common_example(name, png_bytes(48, 40, seed), "png", 48, 40)
                                        for seed, name in enumerate(names)])
    return str(path)


class Waited(Exception):
    """A bounded wait's alarm: not an OSError, which the tool may take for a file it cannot open."""


@contextlib.contextmanager
def bounded_wait(seconds):
    """Within: a wait that would block for good (a FIFO opened to be read) ends in Waited after `seconds`."""
    def waited(*_):
        raise Waited(f"waited {seconds} s on the FIFO")

    previous = signal.signal(signal.SIGALRM, waited)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def every_file(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder) for root, _, names in os.walk(folder)
                  for name in names)


def manifest_entries(output_dir):
    return [json.loads(line) for name in sorted(os.listdir(output_dir))
            if name.startswith("manifest-") and name.endswith(".jsonl")
            for line in open(os.path.join(output_dir, name))]


# ---------------------------------------------------------------------------------------------------
# 1. Names into paths: any name gets a safe, unique, stable folder inside the three folders.

HOSTILE = ["..", "", ".", "a\x00b", "manifest-0-of-1.jsonl.png", "checkpoint", "final.png", "plain"]


def test_hostile_item_names_stay_inside_their_folders_each_in_its_own(workdir, capsys, base_args):
    records = named_records(workdir / "hostile.tfrecord", HOSTILE)
    folders = ["--checkpoint-dir", "run/checkpoints", "--log-dir", "run/graphs", "--output-dir", "run/outputs"]
    code, out, err = run_main([*base_args, "--content", records, *SMALL_RUN, *folders], capsys)
    assert code == 0, err
    assert sorted(os.listdir(workdir)) == ["hostile.tfrecord", "run"]  # nothing written beside or above
    entries = manifest_entries(workdir / "run" / "outputs")
    names = {entry["name"]: entry for entry in entries}
    assert set(names) == {os.path.splitext(name)[0] for name in HOSTILE} and len(entries) == len(HOSTILE)
    item_folders = [entry["folder"] for entry in entries]
    assert len(set(item_folders)) == len(HOSTILE) and names["plain"]["folder"] == "plain"
    for entry in entries:
        assert entry["status"] == "done", entry
        folder = entry["folder"]
        assert os.sep not in folder and folder not in (".", "..", "") and "\x00" not in folder
        for top in ("checkpoints", "graphs", "outputs"):
            assert os.path.isdir(workdir / "run" / top / folder), (top, folder)
        assert Image.open(workdir / "run" / "outputs" / folder / "final.png").size == (40, 32)
    top_files = [name for name in os.listdir(workdir / "run" / "outputs")
                 if os.path.isfile(workdir / "run" / "outputs" / name)]
    assert sorted(top_files) == ["items-0-of-1.json", "manifest-0-of-1.jsonl"]
    assert "\x00" not in out and ": 'a\\x00b' (hostile.tfrecord#3)" in out  # shown escaped in progress lines
    code, out, err = run_main([*base_args, "--content", records, *SMALL_RUN, *folders], capsys)  # stable
    assert code == 0 and f"{len(HOSTILE)} finished before, skipped; 0 to run" in out, (out, err)


CLASHING = ["cats/1.jpg", "dogs/1.jpg", "cats/2.jpg", "a.png", "a.jpg", "x/", "y/"]


@pytest.mark.slow
def test_items_of_one_name_are_told_apart_alike_by_every_worker(workdir, capsys, base_args):
    from runner.items import find_items

    records = named_records(workdir / "pets.tfrecord", CLASHING)
    expected = ["2", "a.jpg", "a.png", "cats/1.jpg", "dogs/1.jpg", "x/", "y/"]
    assert [item.name for item in find_items([records])] == expected
    assert [item.name for item in find_items([os.path.relpath(records)])] == expected  # spelled otherwise
    for index in range(2):
        code, out, err = run_main([*base_args, "--content", records, *SMALL_RUN, "--shard", f"{index}/2"], capsys)
        assert code == 0, err
    entries = manifest_entries("outputs")
    assert sorted(entry["name"] for entry in entries) == expected  # each done once, by one shard or the other
    assert len({entry["folder"] for entry in entries}) == len(expected)
    for entry in entries:
        image = Image.open(os.path.join("outputs", entry["output"]))
        assert entry["status"] == "done" and image.size == (40, 32)
    code, out, err = run_main([*base_args, "--content", records, *SMALL_RUN], capsys)  # one shard now: all done
    assert code == 0 and "7 finished before, skipped; 0 to run" in out, (out, err)


# ---------------------------------------------------------------------------------------------------
# 2. Outputs over inputs, however the input was given.

def test_results_written_over_the_input_record_file_are_refused(workdir, capsys, base_args):
    os.mkdir("data")
    records = named_records(workdir / "data" / "photos-0-of-1.tfrecord", ["a", "b"])
    before = open(records, "rb").read()
    code, out, err = run_main([*base_args, "--content", records, *SMALL_RUN, "--output-tfrecord", "data/photos"],
                              capsys)
    assert_refused(code, out, err, "photos-0-of-1.tfrecord is the input", "--output-tfrecord")
    assert open(records, "rb").read() == before and not os.path.exists("outputs")


def test_results_written_over_a_users_file_are_refused_before_any_item_runs(workdir, capsys, base_args):
    records = named_records(workdir / "photos.tfrecord", ["a", "b"])
    open("styled-0-of-1.tfrecord", "w").write("the user's own notes\n")
    code, out, err = run_main([*base_args, "--content", records, *SMALL_RUN, "--output-tfrecord", "styled"], capsys)
    assert_refused(code, out, err, "styled-0-of-1.tfrecord exists and was not written by style_transfer.py")
    assert open("styled-0-of-1.tfrecord").read() == "the user's own notes\n" and not os.path.exists("outputs")
    os.mkdir("a-file-here")
    open("a-file-here/x", "w").write("")
    code, out, err = run_main([*base_args, "--content", records, *SMALL_RUN, "--output-tfrecord",
                               "a-file-here/x/styled"], capsys)
    assert_refused(code, out, err, "a-file-here/x is a file")  # an unwritable prefix: found before the items run
    assert not os.path.exists("outputs")


def test_a_film_of_the_tools_own_output_frames_is_refused_into_the_same_folder(workdir, capsys, base_args, vgg19_mat,
                                                                              images):
    import utils

    os.makedirs("outputs/frames")
    for number, frame in enumerate(panning_frames(3), start=1):
        utils.save_image(f"outputs/frames/{number:05d}.png", frame, "checkpoints")  # the mark its results carry
    before = {name: open(f"outputs/frames/{name}", "rb").read() for name in os.listdir("outputs/frames")}
    code, out, err = run_main(["--vgg", vgg19_mat[0], "--content", "outputs/frames", "--video", "--style",
                               images["style"], *SMALL_RUN, "--frame-steps", "1"], capsys)
    assert_refused(code, out, err, "is in the input folder outputs/frames")
    assert {name: open(f"outputs/frames/{name}", "rb").read() for name in os.listdir("outputs/frames")} == before


# ---------------------------------------------------------------------------------------------------
# 3. What --restart deletes, and what a lock opens.

def another_programs_checkpoint(folder):
    """A checkpoint of another program (its own variable), as a TF1 Saver writes it."""
    os.makedirs(folder, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        tf.Variable(np.ones(3, np.float32), name="weights_of_my_model")
        saver = tf.train.Saver()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            saver.save(sess, os.path.join(folder, "ckpt"), global_step=1)
    return {name: open(os.path.join(folder, name), "rb").read() for name in os.listdir(folder)}


@pytest.mark.parametrize("restart", [[], ["--restart"]])
def test_another_programs_checkpoints_are_never_resumed_replaced_or_deleted(workdir, capsys, base_args, restart):
    kept = another_programs_checkpoint("checkpoints/style_transfer")
    code, out, err = run_main([*base_args, *SMALL_RUN, *restart], capsys)
    assert_refused(code, out, err, "holds checkpoint files this tool did not write", "ckpt-1")
    folder = "checkpoints/style_transfer"
    assert {name: open(os.path.join(folder, name), "rb").read() for name in os.listdir(folder)} == kept


def test_restart_deletes_only_its_own_files_and_says_what_it_left(workdir, capsys, base_args):
    assert run_main([*base_args, *SMALL_RUN], capsys)[0] == 0
    folder = "checkpoints/style_transfer"
    open(os.path.join(folder, "notes.txt"), "w").write("mine\n")
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "ckpt-1.index").write_text("a user's file\n")
    os.symlink(elsewhere / "ckpt-1.index", os.path.join(folder, "ckpt-99.index"))  # planted: never followed
    code, out, err = run_main([*base_args, *SMALL_RUN, "--restart"], capsys)
    assert_refused(code, out, err, "ckpt-99.index")
    os.remove(os.path.join(folder, "ckpt-99.index"))
    # Named as a checkpoint's data file, but no index of the tool's says so: the Saver would replace it at step 3.
    open(os.path.join(folder, "ckpt-3.data-00000-of-00001"), "w").write("a user's data\n")
    open(os.path.join(folder, "ckpt-10.pt"), "w").write("another program's model\n")  # no name the Saver writes
    code, out, err = run_main([*base_args, *SMALL_RUN, "--restart"], capsys)
    assert_refused(code, out, err, "ckpt-3.data-00000-of-00001", "move")
    assert "ckpt-10.pt" not in err
    os.rename(os.path.join(folder, "ckpt-3.data-00000-of-00001"), workdir / "moved-data")
    code, out, err = run_main([*base_args, *SMALL_RUN, "--restart"], capsys)
    assert code == 0, err
    assert "--restart left 2 entries" in out and "notes.txt" in out and "ckpt-10.pt" in out
    assert open(os.path.join(folder, "notes.txt")).read() == "mine\n"
    assert open(os.path.join(folder, "ckpt-10.pt")).read() == "another program's model\n"
    assert (elsewhere / "ckpt-1.index").read_text() == "a user's file\n"


def test_what_a_kill_mid_save_leaves_is_known_as_the_tools_own_and_the_run_resumes(workdir, capsys, base_args):
    """TensorFlow writes a checkpoint's data file before its index: a kill between the two leaves a data file no
    index vouches for. The saving record, written before each save, names it as the tool's."""
    assert run_main([*base_args, *SMALL_RUN, "--save-every", "2", "--iterations", "2"], capsys)[0] == 0
    folder = "checkpoints/style_transfer"
    assert not os.path.exists(os.path.join(folder, "saving.json"))  # a finished save leaves no saving record
    left = os.path.join(folder, "ckpt-4.data-00000-of-00001")
    shutil.copy(os.path.join(folder, "ckpt-2.data-00000-of-00001"), left)  # as the killed save at step 4 left it
    with open(os.path.join(folder, "saving.json"), "w") as file:
        json.dump({"saving": "ckpt-4"}, file)
    code, out, err = run_main([*base_args, *SMALL_RUN, "--save-every", "2", "--iterations", "4"], capsys)
    assert code == 0, err
    assert "Resuming from step 2" in out
    assert tf.train.latest_checkpoint(folder).endswith("ckpt-4") and not os.path.exists(os.path.join(folder,
                                                                                                      "saving.json"))
    # the same file without the record (another program's, say) is refused, and a record not the tool's too
    shutil.copy(os.path.join(folder, "ckpt-2.data-00000-of-00001"), os.path.join(folder, "ckpt-6.data-00000-of-00001"))
    code, out, err = run_main([*base_args, *SMALL_RUN, "--save-every", "2", "--iterations", "6"], capsys)
    assert_refused(code, out, err, "ckpt-6.data-00000-of-00001")
    os.remove(os.path.join(folder, "ckpt-6.data-00000-of-00001"))
    with open(os.path.join(folder, "saving.json"), "w") as file:
        file.write("a user's notes\n")
    code, out, err = run_main([*base_args, *SMALL_RUN, "--save-every", "2", "--iterations", "6"], capsys)
    assert_refused(code, out, err, "saving.json")
    assert open(os.path.join(folder, "saving.json")).read() == "a user's notes\n"


class Killed(BaseException):
    """Stands for SIGKILL in the middle of a save: no handler of the tool's catches it, nothing after it runs."""


@pytest.mark.slow  # whole runs of several seconds: out of the quick subset
@pytest.mark.parametrize("kill_at", ["between a dropped checkpoint's files", "before the first of them goes",
                                     "before the pointer file lists the new one"])
def test_a_kill_anywhere_in_a_save_leaves_nothing_foreign_and_nothing_for_good(workdir, capsys, base_args,
                                                                              monkeypatch, kill_at):
    """A save writes the new checkpoint, then the pointer file listing it, then deletes the checkpoints past --keep.
    A kill between any two of those leaves files no pointer lists (a complete checkpoint, or part of one): the
    saving record names them as the tool's, and the rerun resumes from what the pointer lists and removes them,
    though their step is never saved again. Killed at step 3 of a run saving at 2 and 3 (the last step)."""
    from runner import run_folder

    args = [*base_args, *SMALL_RUN, "--save-every", "2", "--keep", "1"]
    folder = "checkpoints/style_transfer"
    remove, update_pointer = os.remove, run_folder.tf.train.update_checkpoint_state
    removed = []

    def killed_removing(path, *rest, **named):
        if os.path.basename(str(path)).startswith("ckpt-2."):
            removed.append(path)
            if len(removed) == (2 if kill_at == "between a dropped checkpoint's files" else 1):
                raise Killed
        remove(path, *rest, **named)

    def killed_updating(*rest, **named):
        raise Killed

    with monkeypatch.context() as patched, pytest.raises(Killed):
        if kill_at == "before the pointer file lists the new one":
            patched.setattr(run_folder.tf.train, "update_checkpoint_state", killed_updating)
        else:
            patched.setattr(os, "remove", killed_removing)
        run_main([*args, "--iterations", "3"], capsys)
    assert run_folder.tf.train.update_checkpoint_state is update_pointer
    capsys.readouterr()
    before = set(os.listdir(folder))
    assert "saving.json" in before and {"ckpt-2.index", "ckpt-3.index"} & before
    code, out, err = run_main([*args, "--iterations", "6"], capsys)
    assert code == 0, err
    resumed = 2 if kill_at == "before the pointer file lists the new one" else 3
    assert f"Resuming from step {resumed}" in out
    assert sorted(name for name in os.listdir(folder) if name.startswith(("ckpt-", "checkpoint", "saving"))) == [
        "checkpoint", "ckpt-6.data-00000-of-00001", "ckpt-6.index"]
    code, out, err = run_main([*args, "--iterations", "7"], capsys)
    assert code == 0, err
    assert "Resuming from step 6" in out


def test_old_checkpoints_go_by_exact_name_and_a_folder_named_like_a_pattern_is_refused(workdir, capsys, base_args):
    """TensorFlow's own rotation found an old checkpoint's files by a glob pattern: it deleted a user's
    ckpt-1.meta, and with --checkpoint-dir ck/run[1] ck/run1's files. The tool deletes only the exact names of its
    checkpoints past --keep; a folder named like a pattern, which TensorFlow cannot read back, is refused first."""
    os.makedirs("checkpoints/style_transfer")
    open("checkpoints/style_transfer/ckpt-1.meta", "w").write("a user's graph\n")
    code, out, err = run_main([*base_args, *SMALL_RUN, "--keep", "1", "--iterations", "3"], capsys)
    assert code == 0, err
    assert sorted(name for name in os.listdir("checkpoints/style_transfer") if name.startswith("ckpt-")) == [
        "ckpt-1.meta", "ckpt-3.data-00000-of-00001", "ckpt-3.index"]
    assert open("checkpoints/style_transfer/ckpt-1.meta").read() == "a user's graph\n"
    os.makedirs("ck/run1")
    open("ck/run1/ckpt-1.index", "w").write("another run's index\n")
    code, out, err = run_main([*base_args, *SMALL_RUN, "--checkpoint-dir", "ck/run[1]"], capsys)
    assert_refused(code, out, err, "ck/run[1]", "choose another")
    assert not os.path.exists("ck/run[1]") and open("ck/run1/ckpt-1.index").read() == "another run's index\n"


def test_a_failed_save_removes_what_it_wrote_and_nothing_else(workdir):
    """A save that fails (a full disk) removes what it left of its checkpoint; a user's ckpt-3.pt and a folder
    ckpt-3_templates, whose names begin as that checkpoint's do, stay."""
    from runner import run_folder

    folder = workdir / "f"
    (folder / "ckpt-3_templates").mkdir(parents=True)
    (folder / "ckpt-3_templates" / "notes").write_text("mine\n")
    (folder / "ckpt-3.pt").write_text("a user's model\n")
    (folder / "ckpt-3.data-00000-of-00001").write_text("half a save\n")
    (folder / "ckpt-3.index.tempstate123").write_text("half an index\n")
    with pytest.raises(FixableError, match="free some space"):
        with run_folder.RunFolder(str(folder), str(workdir / "logs"), saver=None, keep=1).explaining_write_failure(3):
            raise OSError(28, "No space left on device", str(folder / "3.png"))
    assert sorted(every_file(folder)) == ["ckpt-3.pt", "ckpt-3_templates/notes"]


@pytest.mark.slow  # whole runs of several seconds: out of the quick subset
def test_what_tensorflow_was_writing_when_a_save_was_killed_is_removed_by_the_next_run(workdir, capsys, base_args,
                                                                                      monkeypatch):
    """TensorFlow writes each checkpoint file under a temporary name and renames it when complete (the pointer
    file's checkpoint.tmp<uuid>, a bundle file's <name>.tempstate<random>): a kill midway leaves the temporary, as
    large as the checkpoint. The rerun removes those of the save its saving record names; look-alikes stay."""
    from tensorflow.python.lib.io import file_io

    args = [*base_args, *SMALL_RUN, "--save-every", "2"]
    folder = "checkpoints/style_transfer"
    assert run_main([*args, "--iterations", "2"], capsys)[0] == 0
    rename = file_io.rename

    def killed_before_the_pointer_is_renamed(source, target, overwrite=False):
        if os.path.basename(target) == "checkpoint":
            raise Killed
        rename(source, target, overwrite)

    with monkeypatch.context() as patched, pytest.raises(Killed):  # TensorFlow's own temporary, left by its code
        patched.setattr(file_io, "rename", killed_before_the_pointer_is_renamed)
        run_main([*args, "--iterations", "4"], capsys)
    capsys.readouterr()
    pointer_temporaries = [name for name in os.listdir(folder) if name.startswith("checkpoint.tmp")]
    assert len(pointer_temporaries) == 1 and os.path.exists(os.path.join(folder, "saving.json"))
    # and those of a kill while the bundle was written, named as TensorFlow names them
    theirs = ["ckpt-4.data-00000-of-00001.tempstate9227800806102621547", "ckpt-4.index.tempstate6446444116253273364"]
    look_alikes = ["ckpt-4.index.tempstate-notes", "ckpt-9.index.tempstate42", "checkpoint.tmp-notes"]
    for name in theirs + look_alikes:
        open(os.path.join(folder, name), "w").write("half a file\n")
    code, out, err = run_main([*args, "--iterations", "6"], capsys)
    assert code == 0, err
    assert "Resuming from step 2" in out  # the pointer file was not yet replaced: it names step 2's
    left = set(os.listdir(folder))
    assert not left & {*theirs, *pointer_temporaries, "saving.json"}
    assert set(look_alikes) <= left
    assert tf.train.latest_checkpoint(folder).endswith("ckpt-6")


def test_a_half_written_save_of_a_run_at_work_is_reported_as_the_folder_in_use(workdir):
    """A second process that finds the data file of a save under way (its index not yet written) says the folder is
    in use, as it is, rather than that it holds files the tool did not write."""
    from runner import run_folder

    folder = workdir / "checkpoints" / "style_transfer"
    folder.mkdir(parents=True)
    (folder / "ckpt-8.data-00000-of-00001").write_bytes(b"half a save")
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time\n"
                               f"file = open({str(folder / 'run.lock')!r}, 'w'); file.write('process 1 on a host');"
                               "file.flush(); fcntl.flock(file, fcntl.LOCK_EX); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(run_folder.FolderInUse, match="in use by process 1 on a host"):
            run_folder.check_only_own_checkpoints(str(folder))
    finally:
        holder.kill()
        holder.communicate()
    with pytest.raises(FixableError, match="did not write"):  # the holder gone: the file is no run's at work
        run_folder.check_only_own_checkpoints(str(folder))


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(workdir, capsys, base_args):
    os.makedirs("checkpoints/style_transfer")
    (workdir / "precious.txt").write_text("keep me\n")
    os.symlink(workdir / "precious.txt", "checkpoints/style_transfer/run.lock")
    code, out, err = run_main([*base_args, *SMALL_RUN], capsys)
    assert_refused(code, out, err, "run.lock is a symbolic link")
    assert (workdir / "precious.txt").read_text() == "keep me\n"


def test_a_fifo_among_the_content_images_fails_alone_without_waiting_on_it(workdir, capsys, base_args):
    """A named pipe called b.png in a content folder, opened to be read, waits for a writer for good: it fails
    alone, at once, and a.png and c.png finish."""
    os.makedirs("photos")
    for name in ("a", "c"):
        write_image(os.path.join("photos", f"{name}.png"), 48, 40, seed=len(name) + ord(name))
    os.mkfifo(os.path.join("photos", "b.png"))

    with bounded_wait(60):  # were it to block, the alarm ends it
        code, out, err = run_main([*base_args, "--content", "photos", *SMALL_RUN], capsys)
    assert code == 2 and "1 of 3 items failed" in err and "not a regular file" in err, (out, err)
    assert sorted(entry["name"] for entry in manifest_entries("outputs") if entry["status"] == "done") == ["a", "c"]


def test_a_lock_file_that_is_a_fifo_is_refused_without_waiting_on_it(workdir, capsys, base_args):
    """Opened for reading, a FIFO waits for a writer: neither the lock nor the look at who holds it may hang."""
    from runner import run_folder

    folder = workdir / "checkpoints" / "style_transfer"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "run.lock")
    (folder / "ckpt-8.data-00000-of-00001").write_bytes(b"another program's")
    with bounded_wait(20):  # were it to block, the alarm ends it
        with pytest.raises(FixableError, match="did not write"):  # who holds it: none, the FIFO not a lock file
            run_folder.check_only_own_checkpoints(str(folder))
        os.remove(folder / "ckpt-8.data-00000-of-00001")
        code, out, err = run_main([*base_args, *SMALL_RUN], capsys)
    assert_refused(code, out, err, "run.lock is not a regular file")
    assert stat.S_ISFIFO(os.lstat(folder / "run.lock").st_mode)


# ---------------------------------------------------------------------------------------------------
# 4. Caches keyed by what they were made from, and checked when read.

def film_run(folder, vgg19_mat, images, frames, capsys, *more):
    os.chdir(folder)
    return run_main(["--vgg", vgg19_mat[0], "--content", frames, "--video", "--style", images["style"], "--width",
                     "40", "--height", "32", "--optimizer", "lbfgs", "--iterations", "4", "--frame-steps", "2",
                     "--save-every", "2", *more], capsys)


def stylised_frames(folder):
    return [np.asarray(Image.open(os.path.join(folder, "outputs", "frames", name)))
            for name in sorted(os.listdir(os.path.join(folder, "outputs", "frames")))]


@pytest.mark.slow  # three films
def test_the_flow_cache_of_another_film_is_not_used_and_a_damaged_one_is_computed_again(tmp_path, capsys, vgg19_mat,
                                                                                         images):
    first = write_frames(tmp_path / "first", panning_frames(3, seed=1))
    second = write_frames(tmp_path / "second", panning_frames(3, step=(1, 2), seed=2))
    alone, after = tmp_path / "alone", tmp_path / "after"
    alone.mkdir(), after.mkdir()
    for folder, frames in ((alone, second), (after, first)):
        code, out, err = film_run(folder, vgg19_mat, images, frames, capsys)
        assert code == 0, err
    code, out, err = film_run(after, vgg19_mat, images, second, capsys, "--restart")  # same size, another film
    assert code == 0, err
    for expected, found in zip(stylised_frames(alone), stylised_frames(after)):
        np.testing.assert_array_equal(found, expected)

    flow_dir = after / "checkpoints" / "style_transfer" / "flow"
    for name in os.listdir(flow_dir):
        (flow_dir / name).write_bytes((flow_dir / name).read_bytes()[:200])  # cut short
    code, out, err = film_run(after, vgg19_mat, images, second, capsys, "--restart")
    assert code == 0 and "warning: the flow cache" in err and "is damaged" in err, err
    for expected, found in zip(stylised_frames(alone), stylised_frames(after)):
        np.testing.assert_array_equal(found, expected)


@pytest.mark.slow  # a whole run of several seconds: out of the quick subset
def test_a_films_written_frames_are_checked_before_a_resume_starts_from_them(workdir, capsys, vgg19_mat, images,
                                                                              monkeypatch):
    """A film's next frame, and so its resume, starts from its previous written frame: another film run into the
    same --output-dir (with its own --checkpoint-dir) writes over those frames, and the resume is refused in one
    line instead of going on from another film's frame."""
    import style_transfer

    first = write_frames(workdir / "first", panning_frames(3, seed=1))
    second = write_frames(workdir / "second", panning_frames(3, seed=2))

    def film(frames, checkpoints):
        return ["--vgg", vgg19_mat[0], "--content", frames, "--video", "--style", images["style"], "--width", "40",
                "--height", "32", "--optimizer", "lbfgs", "--iterations", "2", "--frame-steps", "1",
                "--checkpoint-dir", checkpoints, "--log-dir", f"graphs-{checkpoints}"]
    train = style_transfer.train

    def stopped_before_frame_3(job, index, *args, **kwargs):
        if index == 2 and job.folders.checkpoint_dir == "first":  # Ctrl-C as frame 3 begins
            os.kill(os.getpid(), signal.SIGINT)
        return train(job, index, *args, **kwargs)
    monkeypatch.setattr(style_transfer, "train", stopped_before_frame_3)
    assert run_main(film(first, "first"), capsys)[0] == 130  # frames 1 and 2 written: frame 2 goes on from 1
    frames = {name: open(os.path.join("outputs", "frames", name), "rb").read()
              for name in os.listdir(os.path.join("outputs", "frames"))}
    code, out, err = run_main(film(second, "second"), capsys)  # another film, the same outputs/frames
    assert_refused(code, out, err, "written by another run")  # the frames' mark names the first film's folder
    assert {name: open(os.path.join("outputs", "frames", name), "rb").read() for name in frames} == frames
    # Written over all the same (by a copy of the first film's folder, whose mark is the first's), frame 1 is
    # not the frame the first film wrote.
    utils.save_image(os.path.join("outputs", "frames", "00001.png"), panning_frames(1, seed=3)[0],
                     run_folder.image_mark("first"))
    code, out, err = run_main(film(first, "first"), capsys)
    assert_refused(code, out, err, os.path.join("outputs", "frames", "00001.png"), "is not the frame this run wrote",
                   "--restart")
    monkeypatch.setattr(style_transfer, "train", train)
    code, out, err = run_main([*film(first, "first"), "--restart"], capsys)
    assert code == 0, err


@pytest.mark.slow  # whole runs of several seconds: out of the quick subset
def test_a_finished_films_video_is_made_only_of_its_own_frames(workdir, capsys, vgg19_mat, images):
    """Run again once done, a film makes its video again from its frame files: another film's first frame written
    there meanwhile (its own --checkpoint-dir, the same --output-dir) went into the video unchecked. Each frame is
    checked against the run's record: refused in one line."""
    first = write_frames(workdir / "first", panning_frames(3, seed=1))
    second = write_frames(workdir / "second", panning_frames(3, seed=2))

    def film(frames, checkpoints, *more):
        return ["--vgg", vgg19_mat[0], "--content", frames, "--video", "--style", images["style"], "--width", "40",
                "--height", "32", "--optimizer", "lbfgs", "--iterations", "2", "--frame-steps", "1",
                "--checkpoint-dir", checkpoints, "--log-dir", f"graphs-{checkpoints}", *more]
    assert run_main(film(first, "first"), capsys)[0] == 0
    video_before = open(os.path.join("outputs", "final.mp4"), "rb").read()
    code, out, err = run_main(film(second, "second", "--frames", "1:1", "--output", "outputs/second.png"), capsys)
    assert_refused(code, out, err, "written by another run")  # the frames' mark names the first film's folder
    utils.save_image(os.path.join("outputs", "frames", "00001.png"), panning_frames(1, seed=3)[0],
                     run_folder.image_mark("first"))  # as a copy of the first film's folder would
    code, out, err = run_main(film(first, "first"), capsys)
    assert_refused(code, out, err, os.path.join("outputs", "frames", "00001.png"), "one of the video's frames",
                   "--restart")
    assert open(os.path.join("outputs", "final.mp4"), "rb").read() == video_before


def test_a_film_given_a_videos_name_writes_its_last_frame_beside_the_video(workdir, capsys, vgg19_mat, images):
    """With --output film.mov the last frame's still went to film.mov as a PNG (the video to film.mp4), which the
    next run then refused as not its own video: the same command could not run again. The still goes beside it."""
    frames = write_frames(workdir / "frames", panning_frames(2, seed=1))
    args = ["--vgg", vgg19_mat[0], "--content", str(frames), "--video", "--style", images["style"], "--width", "40",
            "--height", "32", "--optimizer", "lbfgs", "--iterations", "2", "--frame-steps", "1", "--output",
            "out/film.mov"]
    for _ in range(2):
        code, out, err = run_main(args, capsys)
        assert code == 0, err
        assert sorted(os.listdir("out")) == ["film.mp4", "film.png"]


def test_a_pipe_where_the_video_goes_is_refused_without_waiting_on_it(workdir, capsys, vgg19_mat, images):
    """Asked whether a named pipe at outputs/final.mp4 is its own video, ffmpeg waited on it for a minute and the
    run ended in a traceback: it is refused at once, in one line, and left as it is."""
    frames = write_frames(workdir / "frames", panning_frames(2, seed=1))
    os.makedirs("outputs")
    os.mkfifo(os.path.join("outputs", "final.mp4"))

    with bounded_wait(30):  # were it to block, the alarm ends it
        code, out, err = run_main(["--vgg", vgg19_mat[0], "--content", str(frames), "--video", "--style",
                                   images["style"], "--width", "40", "--height", "32", "--iterations", "2"], capsys)
    assert_refused(code, out, err, "outputs/final.mp4", "not written by style_transfer.py")
    assert stat.S_ISFIFO(os.lstat(os.path.join("outputs", "final.mp4")).st_mode)


TILED = ["--width", "96", "--height", "64", "--tile", "64", "--tile-overlap", "8", "--iterations", "6",
         "--save-every", "1"]


def damage_assembly(path, how):
    if how == "cut":
        path.write_bytes(path.read_bytes()[:300])
    elif how == "bit-flipped":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x40
        path.write_bytes(bytes(data))
    elif how == "empty":
        path.write_bytes(b"")
    else:
        with np.load(path) as saved:
            arrays = dict(saved)
        if how == "NaN":
            arrays["image"][3, 3] = np.nan
        elif how == "wrong shape":
            arrays = {**arrays, "image": arrays["image"][:10]}
        elif how == "another run's":
            arrays["key"] = np.asarray("0" * 64)
        with open(path, "wb") as file:
            np.savez(file, **arrays)


@pytest.fixture(scope="module")
def finished_tiled_run(tmp_path_factory, vgg19_mat, images):
    """A finished tiled run's folder (made once for the module), and its options."""
    import style_transfer

    folder = tmp_path_factory.mktemp("tiled")
    args = ["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"], *TILED]
    started_in = os.getcwd()
    os.chdir(folder)
    try:
        assert style_transfer.main(args) == 0
    finally:
        os.chdir(started_in)
    return folder, args


@pytest.mark.slow
@pytest.mark.parametrize("how", ["cut", "bit-flipped", "empty", "NaN", "wrong shape", "another run's"])
def test_a_damaged_assembled_image_is_refused_and_the_finished_image_kept(workdir, capsys, finished_tiled_run, how):
    shutil.copytree(finished_tiled_run[0], workdir, dirs_exist_ok=True)
    args = finished_tiled_run[1]
    final = open("outputs/final.png", "rb").read()
    assembled = workdir / "checkpoints" / "style_transfer" / tiles.ASSEMBLED
    damage_assembly(assembled, how)
    damaged = assembled.read_bytes()
    code, out, err = run_main(args, capsys)  # a finished run, run again: it rewrites its final image
    assert_refused(code, out, err, "assembled", "--restart")
    assert open("outputs/final.png", "rb").read() == final and assembled.read_bytes() == damaged


@pytest.mark.slow
def test_a_pipe_at_the_assembled_image_is_refused_without_waiting_on_it(workdir, capsys, finished_tiled_run):
    shutil.copytree(finished_tiled_run[0], workdir, dirs_exist_ok=True)
    assembled = workdir / "checkpoints" / "style_transfer" / tiles.ASSEMBLED
    assembled.unlink()
    os.mkfifo(assembled)
    with bounded_wait(60):  # were it to block, the alarm ends it
        code, out, err = run_main(finished_tiled_run[1], capsys)
    assert_refused(code, out, err, "assembled", "not a regular file", "--restart")
    assert stat.S_ISFIFO(os.lstat(assembled).st_mode)


def test_a_full_disk_while_writing_the_assembled_image_names_it(workdir, capsys, base_args, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(tiles.np, "savez", no_space)
    code, out, err = run_main([*base_args[:-4], *TILED], capsys)
    assert_refused(code, out, err, "could not write", "assembled.npz", "No space left on device")


RESULTS_ON_A_FULL_DISK = """
import resource, sys
import style_transfer
from runner import batch
write_results = batch.write_results
def on_a_full_disk(*args, **kwargs):  # the items are done; any file write past 1000 bytes fails from here (EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return write_results(*args, **kwargs)
batch.write_results = on_a_full_disk
sys.exit(style_transfer.main(sys.argv[1:]))
"""


@pytest.mark.slow  # processes of their own, under a file-size limit
def test_a_full_disk_while_writing_records_names_the_file(tmp_path, base_args):
    from conftest import PROJECT

    records = named_records(tmp_path / "photos.tfrecord", ["a", "b"])
    environment = {**os.environ, "PYTHONPATH": PROJECT}
    run = subprocess.run([sys.executable, "-c", RESULTS_ON_A_FULL_DISK, *base_args, "--content", records, *SMALL_RUN,
                          "--output-tfrecord", "styled"], cwd=tmp_path, env=environment, capture_output=True,
                         text=True, timeout=300)
    assert_refused(run.returncode, run.stdout, run.stderr, "cannot write styled-0-of-1.tfrecord", "File too large")
    assert not [name for name in os.listdir(tmp_path) if name.startswith("styled")]  # no temporary left either

    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(3):
        write_image(photos / f"p{seed}.png", 100, 80, seed=seed)
    packed = subprocess.run([sys.executable, "-m", "runner.tfrecords", str(photos), str(tmp_path / "data" / "ph")],
                            cwd=PROJECT, capture_output=True, text=True, timeout=300,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048)))
    assert_refused(packed.returncode, packed.stdout, packed.stderr, "ph-0-of-1.tfrecord", "File too large")
    assert os.listdir(tmp_path / "data") == []


def test_a_full_disk_while_writing_the_flow_cache_names_it(workdir, capsys, vgg19_mat, images, monkeypatch):
    from runner import video

    def no_space(file, **arrays):
        file.write(b"PK")  # a start, then the disk is full: a write to an open file, which names no file
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(video.np, "savez", no_space)
    frames = write_frames(workdir / "film", panning_frames(2))
    code, out, err = run_main(["--vgg", vgg19_mat[0], "--content", frames, "--video", "--style", images["style"],
                               *SMALL_RUN, "--frame-steps", "1"], capsys)
    flow_dir = os.path.join("checkpoints", "style_transfer", "flow")
    assert_refused(code, out, err, f"cannot write {flow_dir}{os.sep}", "-00002.npz (No space left on device)")
    assert os.listdir(flow_dir) == []  # nor a temporary left behind


def test_every_atomic_write_that_fails_names_its_file(tmp_path):
    import utils

    path = str(tmp_path / "result.bin")
    with pytest.raises(OSError) as raised:
        with utils.atomic_output(path) as temporary, open(temporary, "wb") as file:
            file.write(b"some")
            raise OSError(28, "No space left on device")  # as a write to an open file fails: no file named
    assert raised.value.filename == path and raised.value.errno == 28 and os.listdir(tmp_path) == []
    with pytest.raises(OSError) as raised:
        with utils.atomic_output(path):
            open(tmp_path / "an input that is not there")  # another file's failure keeps its own name
    assert raised.value.filename == str(tmp_path / "an input that is not there")


# ---------------------------------------------------------------------------------------------------
# 5. Damaged records fail alone, each with its own reason.

def cs20_record(shape, pixel_bytes):
    return tfrecords.example({"image": pixel_bytes, "shape": np.asarray(shape, np.int32).tobytes(), "label": "x"})


def test_damaged_records_of_every_kind_fail_alone_with_their_reasons(workdir, capsys, base_args):
    good = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    records = {
        "ok": cs20_record(good.shape, good.tobytes()),
        "negative": cs20_record((-30, -40, 3), good.tobytes()),
        "too few bytes": cs20_record((30, 40, 3), good.tobytes()[:100]),
        "two channels": cs20_record((30, 40, 2), good.tobytes()[:2400]),
        "empty": cs20_record((0, 40, 3), b""),
        "shape of 5 bytes": tfrecords.example({"image": good.tobytes(), "shape": b"\x01\x02\x03\x04\x05"}),
        "integers for image": tf.train.Example(features=tf.train.Features(feature={
            "image/encoded": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 2]))})).SerializeToString(),
        "not an image": tfrecords.example({"image/encoded": b"not an image at all", "image/filename": "junk.png"}),
    }
    tfrecords.write_records("mixed.tfrecord", list(records.values()))
    code, out, err = run_main([*base_args, "--content", "mixed.tfrecord", *SMALL_RUN], capsys)
    assert_refused(code, out, err, f"{len(records) - 1} of {len(records)} items failed")
    entries = manifest_entries("outputs")
    assert [entry["status"] for entry in entries].count("done") == 1
    reasons = [entry["reason"] for entry in entries if entry["status"] == "failed"]
    assert len(reasons) == len(records) - 1
    for reason in reasons:
        assert "record" in reason or "junk" in reason, reason
        assert "BytesIO" not in reason and "Graph execution error" not in reason and "Traceback" not in reason


def test_an_empty_record_file_is_refused_in_one_line(workdir, capsys, base_args):
    open("empty.tfrecord", "wb").close()
    code, out, err = run_main([*base_args, "--content", "empty.tfrecord", *SMALL_RUN], capsys)
    assert_refused(code, out, err, "empty.tfrecord holds no records")
    open("empty.txt", "w").write("# nothing listed\n")  # any input that gives no item, alone
    code, out, err = run_main([*base_args, "--content", "empty.txt", "empty.tfrecord", *SMALL_RUN], capsys)
    assert_refused(code, out, err, "empty.txt lists no image")


def test_an_empty_record_file_among_others_is_passed_over_with_a_warning(workdir, capsys, base_args):
    os.mkdir("photos")
    for seed in range(3):
        write_image(f"photos/p{seed}.png", 48, 40, seed=seed)
    assert tfrecords.main(["photos", "data/ph", "--shards", "4"]) == 0  # never more shards than images
    assert "3 images: packed into 3 shards, not 4" in capsys.readouterr().out
    assert sorted(os.listdir("data")) == [f"ph-{index}-of-3.tfrecord" for index in range(3)]
    open("data/ph-3-of-4.tfrecord", "wb").close()  # an empty shard, as the packer wrote one before
    code, out, err = run_main([*base_args, "--content", "data/ph-*.tfrecord", *SMALL_RUN], capsys)
    assert code == 0, err
    assert err.strip().splitlines() == ["warning: TFRecord file data/ph-3-of-4.tfrecord holds no records; passed "
                                        "over, the other inputs run"]
    assert sorted(entry["name"] for entry in manifest_entries("outputs")) == ["p0", "p1", "p2"]


def test_the_packer_never_replaces_a_file_it_did_not_write(workdir, capsys):
    os.mkdir("photos")
    write_image("photos/a.png", 20, 16, seed=1)
    os.mkdir("data")
    open("data/ph-0-of-1.tfrecord", "w").write("the user's own file\n")
    assert tfrecords.main(["photos", "data/ph"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "data/ph-0-of-1.tfrecord exists and was not written" in err
    assert open("data/ph-0-of-1.tfrecord").read() == "the user's own file\n"
    os.remove("data/ph-0-of-1.tfrecord")
    assert tfrecords.main(["photos", "data/ph"]) == 0
    write_image("photos/b.png", 20, 16, seed=2)
    assert tfrecords.main(["photos", "data/ph"]) == 0  # its own file: packed again
    assert len(list(tfrecords.serialized_records("data/ph-0-of-1.tfrecord"))) == 2


def test_a_file_that_is_not_a_tfrecord_gives_its_cause(workdir, capsys, base_args):
    open("junk.tfrecord", "wb").write(b"\x10\x00\x00\x00\x00\x00\x00\x00 plainly not a record file")
    code, out, err = run_main([*base_args, "--content", "junk.tfrecord", *SMALL_RUN], capsys)
    assert_refused(code, out, err, "corrupted record")


# ---------------------------------------------------------------------------------------------------
# 6. Shards that cover the data set.

@pytest.mark.parametrize("environ, words", [
    ({"SLURM_ARRAY_TASK_ID": "two"}, "SLURM_ARRAY_TASK_ID='two' is not a whole number"),
    ({"JOB_COMPLETION_INDEX": ""}, "JOB_COMPLETION_INDEX='' is not a whole number"),
    ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "4",
      "SLURM_ARRAY_TASK_COUNT": "3"}, "pass --shard-count"),  # --array=0-4:2
    ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "9",
      "SLURM_ARRAY_TASK_COUNT": "3"}, "pass --shard-count"),  # --array=1,5,9
    ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "0",
      "SLURM_ARRAY_TASK_COUNT": "1", "SLURM_ARRAY_TASK_STEP": "5"}, "pass --shard-count"),  # --array=0-4:5
])
def test_an_array_that_would_leave_items_undone_is_refused(environ, words):
    with pytest.raises(batch.FixableError, match=words):
        batch.shard_from(None, 5 if "JOB_COMPLETION_INDEX" in environ else None, environ)


def test_with_a_shard_count_a_slurm_task_runs_its_own_shard_whatever_the_submission():
    for task in ("1", "5", "9"):
        environ = {"SLURM_ARRAY_TASK_ID": task, "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "9",
                   "SLURM_ARRAY_TASK_COUNT": "3"}
        assert batch.shard_from(None, 10, environ) == batch.Shard(int(task), 10)
    whole = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "3",
             "SLURM_ARRAY_TASK_COUNT": "4"}
    assert batch.shard_from(None, None, whole) == batch.Shard(2, 4)


def test_a_slurm_resubmission_from_task_0_is_refused_without_the_shard_count(workdir, capsys, base_args,
                                                                             monkeypatch):
    """--array=0-1, resubmitting two failed tasks of an array that ran 0-2, looks like a whole array of 2: with the
    earlier runs' 3 shards in --output-dir, it is refused unless --shard-count says which count is meant."""
    records = named_records(workdir / "photos.tfrecord", ["a", "b", "c"])
    assert run_main([*base_args, "--content", records, *SMALL_RUN, "--shard", "2/3"], capsys)[0] == 0  # task 2 ran
    for name, value in {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "1",
                        "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_STEP": "1"}.items():
        monkeypatch.setenv(name, value)
    before = {path: os.path.getmtime(os.path.join("outputs", path)) for path in every_file("outputs")}
    code, out, err = run_main([*base_args, "--content", records, *SMALL_RUN], capsys)
    assert_refused(code, out, err, "split the data set into 3 shards", "--shard-count 3")
    assert {path: os.path.getmtime(os.path.join("outputs", path)) for path in every_file("outputs")} == before
    code, out, err = run_main([*base_args, "--content", records, *SMALL_RUN, "--shard-count", "3"], capsys)
    assert code == 0 and "Shard 1-of-3: 1 of 3 items; 0 finished before" in out and "== item 1/1: b" in out, out
    whole = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "2",
             "SLURM_ARRAY_TASK_COUNT": "3"}  # the whole array again, as first submitted: its count agrees
    assert batch.shard_from(None, None, whole) == batch.Shard(2, 3)
    batch.check_slurm_shard_count("outputs", batch.shard_from(None, None, whole))


def test_items_finished_under_another_shard_count_are_in_the_results(workdir, capsys, base_args):
    records = named_records(workdir / "photos.tfrecord", ["a", "b", "c"])
    assert run_main([*base_args, "--content", records, *SMALL_RUN], capsys)[0] == 0  # all, as one shard
    found = []
    for index in range(2):
        code, out, err = run_main([*base_args, "--content", records, *SMALL_RUN, "--shard", f"{index}/2",
                                   "--output-tfrecord", "styled"], capsys)
        assert code == 0 and "finished before, skipped; 0 to run" in out, (out, err)
        found += [tf.train.Example.FromString(record).features.feature["image/filename"].bytes_list.value[0]
                  for _, record in tfrecords.serialized_records(f"styled-{index}-of-2.tfrecord")]
    assert sorted(found) == [b"a", b"b", b"c"]


@pytest.mark.slow  # whole runs of several seconds: out of the quick subset
def test_results_written_where_the_content_pattern_looks_are_not_content(workdir, capsys, base_args):
    """Shard 0 writes data/photos-styled-0-of-2.tfrecord, which shard 1's --content data/photos-*.tfrecord also
    matches: read as content, it gave shard 1 more items (a, b, a again as a.png) in another order, and b ran in
    no shard. Results are left out of what a pattern matches: every item runs once, in one shard or the other."""
    os.makedirs("data")
    named_records(workdir / "data" / "photos-0.tfrecord", ["a", "b"])
    named_records(workdir / "data" / "photos-1.tfrecord", ["c", "d"])
    ran = []
    for index in range(2):
        code, out, err = run_main([*base_args, "--content", "data/photos-*.tfrecord", *SMALL_RUN, "--shard",
                                   f"{index}/2", "--output-tfrecord", "data/photos-styled"], capsys)
        assert code == 0, err
        ran += [entry["name"] for entry in manifest_entries("outputs") if entry["status"] == "done"
                and entry["name"] not in ran]
    assert sorted(ran) == ["a", "b", "c", "d"]
    assert sorted(os.listdir("data")) == ["photos-0.tfrecord", "photos-1.tfrecord", "photos-styled-0-of-2.tfrecord",
                                          "photos-styled-1-of-2.tfrecord"]
    code, out, err = run_main([*base_args, "--content", "data/photos-*.tfrecord", *SMALL_RUN, "--shard", "0/2",
                               "--output-tfrecord", "data/photos-styled"], capsys)
    assert code == 0 and "finished before, skipped; 0 to run" in out, (out, err)


def test_a_file_name_that_is_not_utf8_reaches_the_results_as_its_bytes(workdir, capsys, base_args):
    """A content file named in Latin-1 (caf\\xe9.png) ran, and then writing the results raised UnicodeEncodeError:
    no results file, every time. Its name is written as the bytes the folder holds."""
    os.makedirs("photos")
    write_image("photos/a.png", 48, 40, seed=1)
    with open(b"photos/caf\xe9.png", "wb") as file:
        file.write(png_bytes(48, 40, seed=2))
    code, out, err = run_main([*base_args, "--content", "photos", *SMALL_RUN, "--output-tfrecord", "styled"], capsys)
    assert code == 0, err
    names = [tf.train.Example.FromString(record).features.feature["image/filename"].bytes_list.value[0]
             for _, record in tfrecords.serialized_records("styled-0-of-1.tfrecord")]
    assert sorted(names) == [b"a", b"caf\xe9"]


@pytest.mark.parametrize("outputs, refusal", [
    (["--output", ""], "names no file"),
    (["--output", "outs/"], "names no file"),
    (["--output", "outs/final.gif"], "cannot carry the mark"),
    (["--output", "outputs/2.png"], "also where the run writes step 2's image"),
    (["--output-dir", "photos"], "where --content photos finds its images"),
    (["--output", "photos/styled.png"], "where --content photos finds its images"),
    (["--output", "checkpoints/style_transfer/run.json"], "one of the run's records"),
    (["--output", "outs/final.mp4"], "a video's name, and this run makes a still image"),
])
def test_outputs_that_would_harm_this_run_or_the_next_are_refused_up_front(workdir, capsys, base_args, outputs,
                                                                           refusal):
    """Each of these ran, and then failed at the end (no file name; a .gif without the tool's mark, which the
    next run took for a user's file), wrote the final image over a step image or over the run record (so the run
    could not resume), or put results where --content finds images (the next run styled them too)."""
    os.makedirs("photos")
    write_image("photos/a.png", 48, 40, seed=1)
    before = every_file(".")
    code, out, err = run_main([*base_args, "--content", "photos", *SMALL_RUN, "--iterations", "3", *outputs],
                              capsys)
    assert_refused(code, out, err, refusal)
    assert every_file(".") == before


@pytest.mark.slow  # whole runs of several seconds: out of the quick subset
def test_restart_runs_a_data_sets_finished_items_again(workdir, capsys, base_args):
    """--restart on a finished data set skipped every item, and its results file labelled the old images as this
    run's. It runs them again from the start; without it the skip says how to, and another problem is refused."""
    records = named_records(workdir / "photos.tfrecord", ["a", "b"])
    args = [*base_args, "--content", records, *SMALL_RUN, "--output-tfrecord", "styled"]
    assert run_main(args, capsys)[0] == 0
    finals = {name: open(os.path.join("outputs", name, "final.png"), "rb").read() for name in ("a", "b")}
    code, out, err = run_main([*args, "--seed", "7"], capsys)  # another problem: each item refused, as one image
    assert_refused(code, out, err, "2 of 2 items failed", "--restart")
    assert "2 to run, 2 of them finished before with other options" in out
    code, out, err = run_main(args, capsys)  # run again since: each resumes at its end, and is done again
    assert code == 0 and out.count("Resuming from step 2") == 2, (out, err)
    code, out, err = run_main(args, capsys)
    assert code == 0 and "2 finished before, skipped; 0 to run (--restart runs them again)" in out, (out, err)
    code, out, err = run_main([*args, "--seed", "7", "--restart"], capsys)
    assert code == 0 and "0 finished before, skipped; 2 to run" in out, (out, err)
    assert all(open(os.path.join("outputs", name, "final.png"), "rb").read() != finals[name] for name in finals)
    for name in ("a", "b"):
        assert json.load(open(os.path.join("checkpoints", "style_transfer", name, "run.json")))["seed"] == 7
    assert [entry["name"] for entry in manifest_entries("outputs") if entry["status"] == "done"] == [
        "a", "b", "a", "b", "a", "b"]  # done, done again (resumed at its end), and done with --seed 7
    code, out, err = run_main([*args, "--seed", "7"], capsys)
    assert code == 0 and "2 finished before, skipped; 0 to run" in out, (out, err)


@pytest.mark.slow
def test_packed_images_named_as_results_are_never_replaced_by_results(workdir, capsys, base_args):
    """The packer names its files PREFIX-<i>-of-<n>.tfrecord, as results are named: with that prefix given to
    --output-tfrecord, the packed input was taken for results (passed over as content, a traceback when nothing
    else was left) and replaced by a results file holding another item: the packed images were lost."""
    os.makedirs("photos")
    for seed, name in enumerate(["a", "b"]):
        write_image(os.path.join("photos", f"{name}.png"), 48, 40, seed=seed)
    tfrecords.pack("photos", os.path.join("data", "photos"), "common", shards=2)
    packed = {name: open(os.path.join("data", name), "rb").read() for name in os.listdir("data")}
    write_image("c.png", 48, 40, seed=5)
    for extra in ([], ["c.png"]):
        code, out, err = run_main([*base_args, "--content", "data/photos-*.tfrecord", *extra, *SMALL_RUN,
                                   "--output-tfrecord", "data/photos", "--shard", "0/2"], capsys)
        assert_refused(code, out, err, os.path.join("data", "photos-0-of-2.tfrecord"), "--output-tfrecord")
        assert {name: open(os.path.join("data", name), "rb").read() for name in os.listdir("data")} == packed
    code, out, err = run_main([*base_args, "--content", "c.png", *SMALL_RUN, "--output-tfrecord", "data/photos",
                               "--shard", "0/2"], capsys)  # not an input this time: still packed images
    assert_refused(code, out, err, "holds images packed as input", "--output-tfrecord")
    assert {name: open(os.path.join("data", name), "rb").read() for name in os.listdir("data")} == packed
    assert run_main([*base_args, "--content", "c.png", "photos/b.png", *SMALL_RUN,
                     "--output-tfrecord", "out/styled"], capsys)[0] == 0
    code, out, err = run_main([*base_args, "--content", "out/styled-*.tfrecord", *SMALL_RUN, "--output-tfrecord",
                               "out/styled"], capsys)  # a pattern that finds only results: one line, no traceback
    assert_refused(code, out, err, "matches only results of --output-tfrecord")


@pytest.mark.slow
def test_a_damaged_finished_image_is_written_again_or_left_out_of_the_results(workdir, capsys, base_args):
    """A finished item's image cut short blocked the results for good (each rerun: "cannot write a file (image file
    is truncated): free some space"). Cut short (another size than written), the item runs again, resuming at its
    end, and its image is whole again; damaged in place, it is left out of the results, said on stderr."""
    records = named_records(workdir / "photos.tfrecord", ["a", "b"])
    args = [*base_args, "--content", records, *SMALL_RUN, "--output-tfrecord", "styled"]
    assert run_main(args, capsys)[0] == 0
    whole = open(os.path.join("outputs", "b", "final.png"), "rb").read()
    with open(os.path.join("outputs", "b", "final.png"), "r+b") as image:
        image.truncate(300)
    code, out, err = run_main(args, capsys)
    assert code == 0 and "1 finished before, skipped; 1 to run" in out and "Resuming from step 2" in out, (out, err)
    assert open(os.path.join("outputs", "b", "final.png"), "rb").read() == whole
    assert len(read_back("styled-0-of-1.tfrecord")) == 2

    with open(os.path.join("outputs", "b", "final.png"), "r+b") as image:
        image.seek(100)
        image.write(b"\0" * (len(whole) - 100))  # the same size, damaged
    code, out, err = run_main(args, capsys)
    assert code == 0 and "outputs/b/final.png, the image of item b, cannot be read" in err, (out, err)
    assert [record["image/filename"] for record in read_back("styled-0-of-1.tfrecord")] == [b"a"]


@pytest.mark.slow
def test_results_of_another_shard_count_beside_the_new_ones_are_said(workdir, capsys, base_args):
    """Run as two shards, then as one: the two shards' results stayed beside the new file, unsaid, and a reader of
    styled-*.tfrecord got every item twice. They are the tool's own, but perhaps a live run's: said, not removed."""
    records = named_records(workdir / "photos.tfrecord", ["a", "b"])
    args = [*base_args, "--content", records, *SMALL_RUN, "--output-tfrecord", "styled"]
    for shard in ("0/2", "1/2"):
        code, out, err = run_main([*args, "--shard", shard], capsys)
        assert code == 0 and "another shard count" not in err, err
    code, out, err = run_main(args, capsys)
    assert code == 0 and "2 results files of another shard count" in err and "styled-0-of-2.tfrecord" in err, err
    assert sorted(name for name in os.listdir(".") if name.startswith("styled-")) == [
        "styled-0-of-1.tfrecord", "styled-0-of-2.tfrecord", "styled-1-of-2.tfrecord"]


def test_a_manifest_line_cut_short_does_not_swallow_the_next(workdir, capsys, base_args):
    """A line a full disk cut short has no end: the next line was appended to it and could not be read, so its
    item counted as not done. The cut line is ended first."""
    records = named_records(workdir / "photos.tfrecord", ["a", "b"])
    os.makedirs("outputs")
    with open(os.path.join("outputs", "manifest-0-of-1.jsonl"), "w") as file:
        file.write('{"name": "a", "status": "failed", "reason": "an earlier run\'s')  # no end: cut short
    assert run_main([*base_args, "--content", records, *SMALL_RUN], capsys)[0] == 0
    lines = open(os.path.join("outputs", "manifest-0-of-1.jsonl")).read().splitlines()
    assert sorted(json.loads(line)["name"] for line in lines[1:] if json.loads(line)["status"] == "done") == ["a", "b"]
    os.remove(os.path.join("checkpoints", "style_transfer", "a", batch.DONE_RECORD))  # only the manifest says so
    code, out, err = run_main([*base_args, "--content", records, *SMALL_RUN], capsys)
    assert code == 0 and "2 finished before, skipped" in out, (out, err)


def test_a_stop_signal_while_an_image_is_read_is_no_items_failure(workdir, capsys, base_args, monkeypatch):
    """SIGTERM while Pillow read b.png was caught as b's failure ("not a readable image (SIGTERM)"), and the worker
    went on to the next item. It stops the run (exit 143), and b is not recorded as failed."""
    os.makedirs("photos")
    for index, name in enumerate("abc"):
        write_image(os.path.join("photos", f"{name}.png"), 48, 40, seed=index)
    open_image = Image.open

    def terminated_reading_b(path, *args, **kwargs):
        if str(path).endswith("b.png"):
            os.kill(os.getpid(), signal.SIGTERM)
        return open_image(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", terminated_reading_b)
    code, out, err = run_main([*base_args, "--content", "photos", *SMALL_RUN], capsys)
    assert code == 143, (out, err)
    assert [(entry["name"], entry["status"]) for entry in manifest_entries("outputs")] == [("a", "done")]


def test_a_content_pattern_refuses_only_outputs_it_would_find(workdir, capsys, base_args):
    """A pattern finds files as glob does, * within one folder: --content '*.png' finds a.png, not the default
    outputs/final.png, so the run goes on; --content 'photos/*.png' with --output-dir photos is refused."""
    os.makedirs("photos")
    write_image("a.png", 48, 40, seed=1)
    write_image("photos/b.png", 48, 40, seed=2)
    code, out, err = run_main([*base_args, "--content", "*.png", *SMALL_RUN], capsys)
    assert code == 0, err
    code, out, err = run_main([*base_args, "--content", "photos/*.png", *SMALL_RUN, "--output-dir", "photos",
                               "--output", "second/final.png", "--checkpoint-dir", "ck2"], capsys)
    assert_refused(code, out, err, "where --content photos/*.png finds its images")


def test_a_pipe_at_an_output_is_refused_without_waiting_on_it(workdir, capsys, base_args):
    """Asked whether a named pipe at outputs/final.png carried its mark, the tool opened it and waited for good."""
    os.makedirs("outputs")
    os.mkfifo(os.path.join("outputs", "final.png"))

    with bounded_wait(30):  # were it to block, the alarm ends it
        code, out, err = run_main([*base_args, *SMALL_RUN], capsys)
    assert_refused(code, out, err, "outputs/final.png", "not written by style_transfer.py")


def test_a_restart_redoes_an_item_once_though_two_workers_run_it(tmp_path):
    """With --restart each worker of a shard redid every finished item, also those another worker had just redone:
    an item is redone only if its done record is the one the worker first read."""
    import utils
    from runner.items import Item

    folder = tmp_path / "a"
    folder.mkdir()
    record = folder / batch.DONE_RECORD
    record.write_text(json.dumps({"name": "a", "status": "done", "output": "a/final.png"}) + "\n")
    item = Item("a", "a.png", "a.png")
    done = batch.DoneItems(str(tmp_path / "outputs"), [item], lambda _: str(folder), restarting=True)
    assert not done.redone_meanwhile(item)
    utils.write_text_atomically(str(record), json.dumps(  # another worker's: done again, written anew
        {"name": "a", "status": "done", "output": "a/final.png", "loss": 1}) + "\n")
    assert done.redone_meanwhile(item)


# ---------------------------------------------------------------------------------------------------
# 7. The smaller ones.

def test_a_rerun_from_another_folder_skips_what_is_done(tmp_path, capsys, base_args):
    records = named_records(tmp_path / "photos.tfrecord", ["a", "b"])
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    folders = ["--checkpoint-dir", str(tmp_path / "c"), "--log-dir", str(tmp_path / "g"), "--output-dir",
               str(tmp_path / "o")]
    os.chdir(here)
    assert run_main([*base_args, "--content", records, *SMALL_RUN, *folders], capsys)[0] == 0
    os.chdir(there)
    code, out, err = run_main([*base_args, "--content", records, *SMALL_RUN, *folders], capsys)
    assert code == 0 and "2 finished before, skipped; 0 to run" in out, (out, err)
    assert all(not os.path.isabs(entry["output"]) for entry in manifest_entries(tmp_path / "o"))


def test_manifests_of_the_earlier_version_still_count(workdir, capsys, base_args):
    records = named_records(workdir / "photos.tfrecord", ["a", "b"])
    assert run_main([*base_args, "--content", records, *SMALL_RUN], capsys)[0] == 0
    manifest = workdir / "outputs" / "manifest-0-of-1.jsonl"
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    for entry in entries:  # as the earlier version wrote them: relative to the worker's folder, no folder key
        entry["output"] = os.path.join("outputs", entry.pop("folder"), "final.png")
    manifest.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    for name in ("a", "b"):  # nor did it write done records
        os.remove(workdir / "checkpoints" / "style_transfer" / name / batch.DONE_RECORD)
    code, out, err = run_main([*base_args, "--content", records, *SMALL_RUN], capsys)
    assert code == 0 and "2 finished before, skipped" in out, (out, err)


def test_a_checkpoint_folder_that_is_a_file_is_refused_once_for_a_data_set(workdir, capsys, base_args):
    records = named_records(workdir / "photos.tfrecord", ["a", "b"])
    open("not-a-folder", "w").write("")
    code, out, err = run_main([*base_args, "--content", records, *SMALL_RUN, "--checkpoint-dir", "not-a-folder"],
                              capsys)
    assert_refused(code, out, err, "not-a-folder is a file")
    assert not os.path.exists("outputs")


def test_frames_past_the_end_of_a_film_are_refused(workdir, capsys, vgg19_mat, images):
    frames = write_frames(workdir / "film", panning_frames(5))
    code, out, err = run_main(["--vgg", vgg19_mat[0], "--content", frames, "--video", "--style", images["style"],
                               *SMALL_RUN, "--frames", "4:9"], capsys)
    assert_refused(code, out, err, "--frames 4:9", "which has 5")


def test_packing_into_a_folder_that_does_not_exist_yet(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_image(photos / "a.png", 20, 16, seed=1)
    assert tfrecords.main([str(photos), str(tmp_path / "data/photos")]) == 0  # python -m runner.tfrecords ...
    assert os.path.isfile(tmp_path / "data" / "photos-0-of-1.tfrecord")


def test_what_a_killed_writer_left_is_removed_the_next_time(workdir, capsys, base_args):
    """Only this host's temporaries of ended processes: a worker on another node sharing the folder may be writing
    its own (same name, a pid that means nothing here)."""
    import socket

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process that has ended: its pid names a temporary nobody is writing
    os.makedirs("outputs")
    left = f"outputs/final.png.{socket.gethostname()}.{gone.pid}.tmp"
    elsewhere = f"outputs/final.png.another-node.example.org.{gone.pid}.tmp"
    for path in (left, elsewhere):
        open(path, "wb").write(b"half an image")
    assert run_main([*base_args, *SMALL_RUN], capsys)[0] == 0
    assert not os.path.exists(left) and os.path.isfile("outputs/final.png")
    assert open(elsewhere, "rb").read() == b"half an image"


def test_ctrl_c_between_stages_does_not_say_nothing_was_saved(workdir, capsys, base_args, monkeypatch):
    import style_transfer

    real_train = style_transfer.train

    def interrupted_second_stage(job, index, *args, **kwargs):
        if index == 1:  # Ctrl-C as the second stage begins, before its loop: the handler stops the run at once
            os.kill(os.getpid(), signal.SIGINT)
        return real_train(job, index, *args, **kwargs)
    monkeypatch.setattr(style_transfer, "train", interrupted_second_stage)
    code, out, err = run_main([*base_args, "--scales", "0.5", "1", "--scale-steps", "2", "--iterations", "4"], capsys)
    assert code == 130 and len(err.strip().splitlines()) == 1
    assert "nothing was saved" not in err and "kept" in err
    assert os.path.exists("checkpoints/style_transfer/ckpt-2.index")


@pytest.mark.slow  # a million items listed twice
def test_a_million_names_are_sharded_identically_by_every_worker(tmp_path):
    """Names only, no images: two workers listing the same list of a million paths (in another order, from two
    list files) see the same sorted items, and the shards split them without a gap or an overlap."""
    from runner.items import find_items

    names = [f"photo{number:07d}.jpg" for number in range(1_000_000)]
    (tmp_path / "a.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "b.txt").write_text("\n".join(reversed(names)) + "\n")
    first, second = find_items([str(tmp_path / "a.txt")]), find_items([str(tmp_path / "b.txt")])
    assert [item.name for item in first] == [item.name for item in second] == [name[:-4] for name in names]
    count = 100_000
    shards = [first[index::count] for index in (0, 1, count - 1)]
    assert [len(shard) for shard in shards] == [10, 10, 10]
    assert [item.name for item in shards[0]] == [f"photo{number:07d}" for number in range(0, 1_000_000, count)]
    seen = set()
    for index in range(count):
        part = {item.name for item in first[index::count]}
        assert not part & seen
        seen |= part
    assert len(seen) == 1_000_000
