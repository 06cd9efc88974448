"""Data sets: TFRecord in (both layouts, read with tf.data) and out, text lists, shards from the command line and
from schedulers' variables, manifests, skipping what is done, a bad item failing alone, workers killed and rerun."""

import json
import os
import shutil
import signal

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

from conftest import run_main, run_script, start_script, wait_for, write_image
from runner import batch, items, tfrecords
from test_cli import assert_refused

FAST = ["--width", "40", "--height", "32", "--iterations", "2", "--save-every", "1"]


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed, name in enumerate(["beach.jpg", "city.png", "dog.png", "forest.jpg"]):
        write_image(folder / name, 60 + 4 * seed, 48, seed=20 + seed)
    return folder


def write_photos(folder, count):
    folder.mkdir()
    for seed in range(count):
        write_image(folder / f"photo{seed}.png", 48, 40, seed=30 + seed)
    return folder


def read_back(path):
    """Every record of a TFRecord file as {key: first value}, read with tf.data."""
    records = []
    for _, serialized in tfrecords.serialized_records(path):
        features = tf.train.Example.FromString(serialized).features.feature
        records.append({key: (feature.bytes_list.value or feature.int64_list.value or feature.float_list.value)[0]
                        for key, feature in features.items()})
    return records


@pytest.mark.parametrize("layout", ["common", "cs20"])
def test_pack_and_read_both_layouts(photos, tmp_path, layout):
    paths = tfrecords.pack(str(photos), str(tmp_path / "data"), layout, shards=2)
    assert [os.path.basename(path) for path in paths] == ["data-0-of-2.tfrecord", "data-1-of-2.tfrecord"]
    found = items.find_items([str(tmp_path / "data-*.tfrecord")])
    if layout == "common":  # named by image/filename
        assert [item.name for item in found] == ["beach", "city", "dog", "forest"]
    else:  # CS20's layout has no file name: <file stem>-<record index>
        assert [item.name for item in found] == ["data-0-of-2-0", "data-0-of-2-1", "data-1-of-2-0", "data-1-of-2-1"]
    first = next(item for item in found if item.source == "data-0-of-2.tfrecord#0")
    decoded = np.asarray(Image.open(__import__("io").BytesIO(first.image.data)).convert("RGB"))
    np.testing.assert_array_equal(decoded, np.asarray(Image.open(photos / "beach.jpg").convert("RGB")))


def test_an_unknown_layout_is_refused_naming_its_keys(workdir, capsys, base_args):
    tfrecords.write_records("odd.tfrecord", [tfrecords.example({"pixels": b"123", "label": 3})])
    code, out, err = run_main([*base_args, "--content", "odd.tfrecord"], capsys)
    assert_refused(code, out, err, "odd.tfrecord", "label, pixels", "not a known image layout")


def test_a_text_file_lists_images(photos, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("# my picks\nphotos/dog.png\n\nphotos/beach.jpg\n")
    found = items.find_items([str(listing)])
    assert [(item.name, item.image) for item in found] == [("beach", str(tmp_path / "photos/beach.jpg")),
                                                           ("dog", str(tmp_path / "photos/dog.png"))]


def manifest_entries(output_dir):
    entries = []
    for name in sorted(os.listdir(output_dir)):
        if name.startswith("manifest-"):
            entries += [json.loads(line) for line in open(os.path.join(output_dir, name))]
    return entries


def test_a_bad_item_fails_alone_and_a_rerun_skips_what_is_done(workdir, capsys, base_args, photos):
    (photos / "broken.jpg").write_text("not a picture\n")
    args = [*base_args, "--content", str(photos), *FAST, "--output-tfrecord", "results/styled"]
    code, out, err = run_main(args, capsys)
    assert_refused(code, out, err, "1 of 5 items failed", "first broken", "manifest-0-of-1.jsonl")
    assert "item broken failed" in out
    entries = manifest_entries("outputs")
    assert sorted((entry["name"], entry["status"]) for entry in entries) == [
        ("beach", "done"), ("broken", "failed"), ("city", "done"), ("dog", "done"), ("forest", "done")]
    failed = next(entry for entry in entries if entry["status"] == "failed")
    assert "not a readable image" in failed["reason"] and failed["source"].endswith("broken.jpg")
    done = [entry for entry in entries if entry["status"] == "done"]
    assert all(entry["steps"] == 2 and entry["loss"] > 0 and entry["seconds"] > 0 for entry in done)
    for entry in done:  # relative to --output-dir: a rerun from any folder finds it
        assert entry["output"] == os.path.join(entry["name"], "final.png") and entry["folder"] == entry["name"]
        assert Image.open(os.path.join("outputs", entry["output"])).size == (40, 32)

    records = read_back("results/styled-0-of-1.tfrecord")  # finished items only, as a tf.data pipeline reads them
    assert [record["image/filename"] for record in records] == [b"beach", b"city", b"dog", b"forest"]
    beach = np.asarray(Image.open(__import__("io").BytesIO(records[0]["image/encoded"])))
    np.testing.assert_array_equal(beach, np.asarray(Image.open("outputs/beach/final.png")))
    assert records[0]["image/width"] == 40 and records[0]["style_transfer/steps"] == 2

    assert batch.summary("outputs")["failed"] == 1 and batch.summary("outputs")["done"] == 4
    write_image(photos / "broken.jpg", 50, 40, seed=9)  # mended: the rerun retries it and skips the rest
    code, out, err = run_main(args, capsys)
    assert code == 0, err
    assert "4 finished before, skipped; 1 to run" in out
    assert [entry["name"] for entry in manifest_entries("outputs")].count("beach") == 1
    assert batch.summary("outputs") == {"items": 5, "done": 5, "failed": 0, "left": 0,
                                        "seconds": batch.summary("outputs")["seconds"], "failures": {}}
    assert len(read_back("results/styled-0-of-1.tfrecord")) == 5


@pytest.mark.slow
def test_a_finished_data_set_run_with_other_options_is_not_taken_for_done(workdir, capsys, base_args, photos):
    """Run again with another style (and no --restart), a finished data set skipped every item: its results file
    then listed the old images as this run's. Done counts for the options it was done with: with a changed problem
    each item is refused as a single run is (--restart), with more --iterations each resumes, with the same
    options each is skipped, and run with the first options again each resumes and is done again, unchanged."""
    style = str(shutil.copy(base_args[base_args.index("--style") + 1], workdir / "style.png"))
    args = [*base_args, "--style", style, "--content", str(photos), *FAST, "--output-tfrecord", "results/styled"]
    assert run_main(args, capsys)[0] == 0
    finals = {name: open(os.path.join("outputs", name, "final.png"), "rb").read()
              for name in ("beach", "city", "dog", "forest")}
    other_style = str(shutil.copy(photos / "dog.png", workdir / "other-style.png"))

    code, out, err = run_main([*args, "--style", other_style], capsys)
    assert_refused(code, out, err, "4 of 4 items failed", "--restart")
    assert "0 finished before, skipped; 4 to run, 4 of them finished before with other options" in out
    assert {name: open(os.path.join("outputs", name, "final.png"), "rb").read() for name in finals} == finals
    assert read_back("results/styled-0-of-1.tfrecord") == []  # none is this run's result

    with open(style, "ab") as file:  # the style file itself edited
        file.write(b"\0")
    code, out, err = run_main(args, capsys)
    assert code == 2 and out.count("holds a run of another problem (style:") == 4, out
    with open(style, "rb+") as file:
        file.truncate(os.path.getsize(style) - 1)
    # The first options again: run again since (their records went), each resumes at its last step, done again.
    code, out, err = run_main(args, capsys)
    assert code == 0 and out.count("Resuming from step 2") == 4, (out, err)
    assert {name: open(os.path.join("outputs", name, "final.png"), "rb").read() for name in finals} == finals
    assert len(read_back("results/styled-0-of-1.tfrecord")) == 4

    code, out, err = run_main([*args[:-2], "--iterations", "3"], capsys)  # longer: each resumes from step 2
    assert code == 0, err
    assert out.count("Resuming from step 2") == 4
    assert {entry["steps"] for entry in manifest_entries("outputs") if entry["status"] == "done"} == {2, 3}
    code, out, err = run_main([*args[:-2], "--iterations", "3"], capsys)
    assert code == 0 and "4 finished before, skipped; 0 to run" in out, err


def test_a_damaged_record_fails_alone(workdir, capsys, base_args, photos):
    good = tfrecords.pack(str(photos), "good", "common", shards=1)[0]
    data = open(tfrecords.pack(str(photos), "raw", "cs20", shards=1)[0], "rb").read()  # 4 records of raw pixels
    open("cut.tfrecord", "wb").write(data[:len(data) * 3 // 8])  # cut short inside its second record
    code, out, err = run_main([*base_args, "--content", good, "cut.tfrecord", *FAST, "--checkpoint-dir", "c",
                               "--log-dir", "g", "--output-dir", "o"], capsys)
    assert code == 2
    entries = {entry["name"]: entry for entry in manifest_entries("o")}
    assert entries["cut-1"]["status"] == "failed" and "record 1" in entries["cut-1"]["reason"]
    assert [entries[name]["status"] for name in ("cut-0", "beach", "city", "dog", "forest")] == ["done"] * 5


def test_shards_from_the_command_line_and_the_schedulers():
    assert batch.shard_from((1, 4), None, {}) == batch.Shard(1, 4)
    slurm = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "2",
             "SLURM_ARRAY_TASK_COUNT": "3"}
    assert batch.shard_from(None, None, slurm) == batch.Shard(2, 3)
    part = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_MAX": "12",
            "SLURM_ARRAY_TASK_COUNT": "3"}  # tasks 10-12 of a larger array: the count must be said
    assert batch.shard_from(None, 20, part) == batch.Shard(12, 20)
    with pytest.raises(Exception, match="--shard-count"):
        batch.shard_from(None, None, part)
    assert batch.shard_from(None, 5, {"JOB_COMPLETION_INDEX": "4"}) == batch.Shard(4, 5)
    assert batch.shard_from(None, None, {}) == batch.Shard(0, 1)
    with pytest.raises(Exception, match="--shard-count"):
        batch.shard_from(None, None, {"JOB_COMPLETION_INDEX": "0"})
    with pytest.raises(Exception, match="does not exist"):
        batch.shard_from(None, 2, {"JOB_COMPLETION_INDEX": "2"})


def test_the_shards_split_the_sorted_items(workdir, capsys, base_args, photos):
    for index in range(2):
        code, out, err = run_main([*base_args, "--content", str(photos), *FAST, "--shard", f"{index}/2"], capsys)
        assert code == 0, err
    by_shard = {}
    for name in ("manifest-0-of-2.jsonl", "manifest-1-of-2.jsonl"):
        by_shard[name] = [json.loads(line)["name"] for line in open(os.path.join("outputs", name))]
    assert by_shard == {"manifest-0-of-2.jsonl": ["beach", "dog"], "manifest-1-of-2.jsonl": ["city", "forest"]}


@pytest.mark.slow
def test_concurrent_overlapping_and_killed_workers_do_each_item_once(tmp_path, base_args, photos):
    args = [*base_args, "--content", str(photos), "--width", "40", "--height", "32", "--iterations", "30",
            "--save-every", "5", "--log-every", "100"]
    # Two shards and a repeat of shard 0, all at once: the item locks keep the repeat off the items in hand.
    workers = [start_script([*args, "--shard", shard], cwd=tmp_path) for shard in ("0/2", "1/2", "0/2")]
    wait_for(lambda: any(os.path.exists(tmp_path / "checkpoints/style_transfer" / name / "checkpoint")
                         for name in ("beach", "city", "dog", "forest")), 120, "a first checkpoint")
    workers[0].send_signal(signal.SIGKILL)  # killed mid-item: the others go on, its item stays resumable
    for worker in workers:
        worker.communicate(timeout=600)
    code, out, err = run_script([*args, "--shard", "0/2"], cwd=tmp_path)  # the killed worker's rerun
    assert code == 0, err
    entries = manifest_entries(tmp_path / "outputs")
    done = [entry["name"] for entry in entries if entry["status"] == "done"]
    assert sorted(done) == ["beach", "city", "dog", "forest"]  # every item done, and done once
    assert not [entry for entry in entries if entry["status"] == "failed"]
    for name in done:
        assert Image.open(tmp_path / "outputs" / name / "final.png").size == (40, 32)


def test_a_worker_reads_the_manifests_once_and_under_each_lock_only_that_items_record(workdir, capsys, base_args,
                                                                                   monkeypatch):
    """The done-check under an item's lock reads the item's done record, not every shard's manifest: a worker's
    cost per item does not grow with the number of shards. A finished shard's rerun reads no manifest at all."""
    records = tfrecords.pack(str(write_photos(workdir / "photos", 3)), "photos", "common", shards=1)[0]
    os.makedirs("outputs")
    for index in range(50):  # the manifests of 50 other shards
        with open(f"outputs/manifest-{index}-of-50.jsonl", "w") as file:
            file.write(json.dumps({"name": f"other{index}", "status": "done", "output": "x/final.png"}) + "\n")
    listings = []
    list_manifests = batch._manifests
    monkeypatch.setattr(batch, "_manifests", lambda output_dir: listings.append(output_dir) or
                        list_manifests(output_dir))
    args = [*base_args, "--content", records, *FAST, "--output-tfrecord", "styled"]
    code, out, err = run_main(args, capsys)
    assert code == 0, err
    assert len(listings) == 1  # at the start, for the three items without a done record; not once per item
    assert len(read_back("styled-0-of-1.tfrecord")) == 3  # the results, from what the run found and finished
    listings.clear()
    code, out, err = run_main(args, capsys)
    assert code == 0 and "3 finished before, skipped; 0 to run" in out, (out, err)
    assert listings == []  # every item's done record says it: no manifest read


def test_the_manifests_keep_only_what_the_done_check_needs_of_the_names_asked_for(tmp_path):
    lines = [{"name": f"photo{number}", "folder": f"photo{number}", "source": "x", "output": f"photo{number}/final.png",
              "status": "done", "reason": None, "loss": 1.5, "steps": 3, "seconds": 0.5} for number in range(100)]
    lines.append({"name": "photo7", "status": "failed", "reason": "later, and failed: it stays done"})
    (tmp_path / "manifest-0-of-1.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines) +
                                                   '{"name": "photo8", "status": "do')  # being appended
    every = batch.Manifests(str(tmp_path))
    assert len(every.done) == 100 and every.done["photo7"] == batch.Done("photo7/final.png", 1.5, 3, source="x")
    asked = batch.Manifests(str(tmp_path), {"photo7", "photo8", "photo99", "none such"})
    assert asked.done == {name: batch.Done(f"{name}/final.png", 1.5, 3, source="x")
                          for name in ("photo7", "photo8", "photo99")}


def test_the_newest_line_of_an_item_tells_whatever_manifest_holds_it(tmp_path):
    """Manifests are read in name order (manifest-0-of-1 before manifest-0-of-2), not in time: the line read last
    was taken, though another manifest's was newer. With options in the lines, that took an image the newest run
    replaced for a result of the older options. Lines carry their time; earlier versions' (none) are older."""
    (tmp_path / "a").mkdir()
    write_image(tmp_path / "a" / "final.png", 8, 8, seed=1)  # the image the newest run (options A) wrote

    def line(status, options, written):
        return json.dumps({"name": "a", "output": "a/final.png", "status": status, "loss": 1.0, "steps": 2,
                           "options": options, **({} if written is None else {"time": written})}) + "\n"
    (tmp_path / "manifest-0-of-1.jsonl").write_text(line("done", "A", 300.0))
    (tmp_path / "manifest-0-of-2.jsonl").write_text(line("done", None, None) + line("done", "B", 200.0))
    assert batch.Manifests(str(tmp_path), {"a"}, options="B").finished("a") is None
    assert batch.Manifests(str(tmp_path), {"a"}, options="A").finished("a").options == "A"
    with open(tmp_path / "manifest-0-of-2.jsonl", "a") as file:  # then a run with B refused for it
        file.write(line("failed", "B", 400.0))
    assert batch.summary(str(tmp_path))["failed"] == 1  # its newest line, not "once done, done"
    (tmp_path / "manifest-0-of-2.jsonl").write_text(line("done", None, None) + line("failed", None, None))
    (tmp_path / "manifest-0-of-1.jsonl").unlink()
    assert batch.summary(str(tmp_path))["done"] == 1  # an earlier version's lines: once done, it stayed done


class Killed(BaseException):
    """What a SIGKILL does to a run, for a test in one process: nothing after it runs."""


def test_an_item_run_again_is_not_done_until_it_is_done_again(tmp_path):
    """A finished item run again (--restart, or other options) and killed after its new final image was written but
    before its manifest line: the rerun with the first options took the new image for the finished one (the old
    record and line vouched for it). Its record goes and a line says it began again, first. An item of the same
    name from another file (a.jpg where a.png was) is not taken for the finished one either."""
    output_dir, folders = str(tmp_path / "outputs"), tmp_path / "checkpoints"
    item = items.Item("a", "photos/a.png", "photos/a.png")

    def finishing(item):
        os.makedirs(os.path.join(output_dir, "a"), exist_ok=True)
        write_image(os.path.join(output_dir, "a", "final.png"), 8, 8, seed=1)
        return batch.ItemResult(0, os.path.join(output_dir, "a", "final.png"), 1.0, 2)

    def killed_after_its_image(item):
        write_image(os.path.join(output_dir, "a", "final.png"), 8, 8, seed=2)
        raise Killed

    def folder(item):
        return str(folders / item.folder)
    shard = batch.Shard(0, 1)
    assert batch.run_items([item], shard, output_dir, finishing, folder, options="A")[0] == 0
    for restart, options in ((True, "A"), (False, "B")):
        with pytest.raises(Killed):
            batch.run_items([item], shard, output_dir, killed_after_its_image, folder, redo=restart, options=options)
        assert batch.DoneItems(output_dir, [item], folder, options="A").finished(item) is None
        assert batch.Manifests(output_dir, {"a"}, "A", {"a": item.source}).finished("a") is None
        assert batch.summary(output_dir)["left"] == 1
        assert batch.run_items([item], shard, output_dir, finishing, folder, options="A")[0] == 0  # done again
        assert batch.DoneItems(output_dir, [item], folder, options="A").finished(item) is not None

    for same_place in ("./photos/a.png", "photos//a.png"):
        moved = items.Item("a", same_place, same_place)
        assert batch.DoneItems(output_dir, [moved], folder, options="A").finished(moved)
    other = items.Item("a", "photos/a.jpg", "photos/a.jpg")
    assert batch.DoneItems(output_dir, [other], folder, options="A").finished(other) is None


def test_damaged_manifests_and_records_are_passed_over(tmp_path):
    """A line without a status, a folder named as a manifest, and a step count no results record can hold (a
    traceback each, from the summary and the results)."""
    (tmp_path / "manifest-0-of-1.jsonl").write_text(json.dumps({"name": "x"}) + "\n" + json.dumps(
        {"name": "y", "status": "done", "output": "y.png", "steps": 10 ** 20, "loss": float("inf")}) + "\n")
    (tmp_path / "manifest-0-of-2.jsonl").mkdir()
    assert batch.summary(str(tmp_path))["done"] == 1
    assert batch.Manifests(str(tmp_path)).done["y"] == batch.Done("y.png", None, None)


def test_the_options_key_counts_files_by_what_they_hold_not_how_they_are_spelt(workdir):
    from runner import inputs, options
    write_image(workdir / "style.png", 8, 8, seed=1)

    def key(*argv):
        return inputs.options_key(options.parse_args(list(argv)))
    assert key("--style", "style.png") == key("--style", "./style.png") == key("--style", str(workdir / "style.png"))
    assert key("--style", "style.png", "--save-every", "7", "--output-dir", "x") == key("--style", "style.png")
    assert key("--style", "style.png", "--seed", "3") != key("--style", "style.png")
    before = key("--style", "style.png")
    write_image(workdir / "style.png", 8, 8, seed=2)
    assert key("--style", "style.png") != before


def test_a_record_files_listing_is_cached_and_checked(workdir, photos, monkeypatch, capsys):
    """A rerun reads a TFRecord file's listing from the cache, not the million records again; a file that changed
    (size or time) is listed again, and so is one whose cache is damaged, with a warning."""
    path = tfrecords.pack(str(photos), "photos", "common", shards=1)[0]
    monkeypatch.setenv("STYLE_TRANSFER_CACHE", str(workdir / "cache"))
    readings = []
    list_records = tfrecords.listed_records
    monkeypatch.setattr(tfrecords, "listed_records", lambda path: readings.append(path) or list_records(path))

    def listed():
        return [(item.name, item.source, item.image.offset, item.image.length) for item in items.find_items([path])]
    first = listed()
    assert len(readings) == 1 and [name for name, *_ in first] == ["beach", "city", "dog", "forest"]
    assert listed() == first and len(readings) == 1  # from the cache
    assert items.find_items([path])[0].image.data == open(photos / "beach.jpg", "rb").read()

    tfrecords.pack(str(photos), "photos", "cs20", shards=1)  # another file at the same path
    readings.clear()
    cs20_names = [f"photos-0-of-1-{index}" for index in range(4)]  # CS20's layout names none: <stem>-<index>
    assert [name for name, *_ in listed()] == cs20_names and len(readings) == 1
    (cache,) = (workdir / "cache").iterdir()
    cache.write_bytes(cache.read_bytes()[:100])  # cut short
    capsys.readouterr()
    assert [name for name, *_ in listed()] == cs20_names
    assert len(readings) == 2 and "warning: the listing cache" in capsys.readouterr().err
    assert listed() and len(readings) == 2  # written again, whole
