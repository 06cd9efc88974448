"""The job-array example on a real single-node Slurm (Debian's slurm-wlm and munge, set up on 127.0.0.1 by
examples/slurm/single-node-cluster.sh): a 3-task array over a small TFRecord data set ends with every item done
once, across a task SIGKILLed mid-item and run again. Skipped, saying why, where Slurm is not installed."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import PROJECT, wait_for, write_image
from runner import tfrecords

pytestmark = pytest.mark.slow

CLUSTER = os.path.join(PROJECT, "examples", "slurm", "single-node-cluster.sh")
ARRAY = os.path.join(PROJECT, "examples", "slurm", "style-transfer-array.sbatch")


@pytest.fixture
def slurm(tmp_path):
    missing = [name for name in ("munged", "slurmctld", "slurmd", "sbatch") if shutil.which(name) is None]
    if missing:
        pytest.skip(f"Slurm is not installed here ({', '.join(missing)} missing): apt-get install slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip("the single-node Slurm here runs as root")
    folder = tmp_path / "slurm"
    started = subprocess.run([CLUSTER, "start", str(folder)], capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        subprocess.run([CLUSTER, "stop", str(folder)], timeout=60)
        pytest.skip(f"the single-node Slurm did not start: {started.stderr.strip()[-300:]}")
    environment = {**os.environ, "SLURM_CONF": str(folder / "slurm.conf"), "PYTHON": sys.executable}
    try:
        yield environment
    finally:
        subprocess.run(["scancel", "--user", "root"], env=environment, timeout=60)
        subprocess.run([CLUSTER, "stop", str(folder)], timeout=60)


def submit(environment, tasks, logs, args):
    """sbatch the example as an array; return its job id."""
    # --no-requeue: a task killed here stays ended (the example requeues, which Slurm delays by about 2 minutes).
    submitted = subprocess.run(["sbatch", "--parsable", f"--array={tasks}", "--cpus-per-task=1", "--mem=3G",
                                "--no-requeue", f"--chdir={PROJECT}", f"--output={logs}/%A_%a.out", ARRAY, *args],
                               env=environment, cwd=PROJECT, capture_output=True, text=True, timeout=60, check=True)
    return submitted.stdout.strip().split(";")[0]


def running(environment, job):
    listed = subprocess.run(["squeue", "--noheader", "--jobs", job, "--format=%i %T"], env=environment,
                            capture_output=True, text=True, timeout=60)
    return listed.stdout.split()


def ran_items(log):
    """The names of the items a task's log says it ran ("== item 1/2: photo0 (...)")."""
    return [line.split(": ", 1)[1].split(" (")[0] for line in log.splitlines() if line.startswith("== item ")]


def folder_run(tmp_path, photos, vgg19_mat, images):
    """(the folder for the tasks' logs, made; the arguments of a run over the folder of photos at 40x32, 2 steps
    each, its folders under tmp_path/work)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    work = tmp_path / "work"
    return logs, ["--vgg", vgg19_mat[0], "--content", str(photos), "--style", images["style"], "--width", "40",
                  "--height", "32", "--iterations", "2", "--checkpoint-dir", str(work / "c"), "--log-dir",
                  str(work / "g"), "--output-dir", str(work / "o")]


def done_items(tmp_path):
    """The names the manifests of a folder_run list as done, sorted."""
    outputs = tmp_path / "work" / "o"
    entries = [json.loads(line) for name in sorted(os.listdir(outputs)) if name.startswith("manifest-")
               for line in open(outputs / name)]
    return sorted(entry["name"] for entry in entries if entry["status"] == "done")


def test_a_job_array_does_every_item_once_across_a_killed_task(slurm, tmp_path, vgg19_mat, images):
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(5):
        write_image(photos / f"photo{seed}.png", 72, 56, seed=40 + seed)
    tfrecords.pack(str(photos), str(tmp_path / "data"), "common", shards=2)
    logs = tmp_path / "logs"
    logs.mkdir()
    work = tmp_path / "work"
    args = ["--vgg", vgg19_mat[0], "--content", str(tmp_path / "data-*.tfrecord"), "--style", images["style"],
            "--width", "64", "--height", "48", "--iterations", "400", "--save-every", "5", "--log-every", "100",
            "--checkpoint-dir", str(work / "checkpoints"), "--log-dir", str(work / "graphs"),
            "--output-dir", str(work / "outputs"), "--output-tfrecord", str(work / "styled")]
    job = submit(slurm, "0-2", logs, args)
    # Task k runs items k, k+3: task 0 photo0 and photo3. Kill it, without warning, once photo0 has a checkpoint
    # (200 steps leave some seconds to do so: an item's steps are fast at this size, and its graph is built once per
    # task; 400 leave enough that photo0 is still running when the kill lands, which the rerun's "Resuming" line
    # shows).
    first = work / "checkpoints" / "photo0" / "checkpoint"
    wait_for(lambda: first.exists() or not running(slurm, job), 300, "task 0's first checkpoint")
    killed = subprocess.run(["scancel", "--full", "--signal=KILL", f"{job}_0"], env=slurm, timeout=60,
                            capture_output=True, text=True)
    assert killed.returncode == 0, (killed.stderr, [path.read_text()[-2000:] for path in sorted(logs.iterdir())])
    wait_for(lambda: not running(slurm, job), 600, "the array to end")
    rerun = submit(slurm, "0-2", logs, args)  # the whole array again: what is done is skipped
    wait_for(lambda: not running(slurm, rerun), 600, "the array run again")

    entries = []
    for name in sorted(os.listdir(work / "outputs")):
        if name.startswith("manifest-"):
            assert name.endswith("-of-3.jsonl"), name
            entries += [json.loads(line) for line in open(work / "outputs" / name)]
    done = sorted(entry["name"] for entry in entries if entry["status"] == "done")
    assert done == [f"photo{seed}" for seed in range(5)], (entries, [open(path).read()[-2000:] for path in
                                                                     sorted(logs.iterdir())])
    first_logs = [open(logs / f"{job}_{task}.out").read() for task in range(3)]
    rerun_logs = [open(logs / f"{rerun}_{task}.out").read() for task in range(3)]
    assert all(f"Shard {task}-of-3" in log and "finished before, skipped" in log for task, log in enumerate(rerun_logs))
    assert "== item 1/2: photo0 " in first_logs[0] and "photo0 " in rerun_logs[0]  # its own items, and only those
    assert ran_items(first_logs[1]) == ["photo1", "photo4"] and ran_items(first_logs[2]) == ["photo2"]
    assert set(ran_items(first_logs[0]) + ran_items(rerun_logs[0])) <= {"photo0", "photo3"}
    assert "Resuming from step" in rerun_logs[0] and "0 finished before, skipped" in rerun_logs[0]  # photo0, killed
    assert sorted(path.name for path in work.iterdir() if path.name.startswith("styled")) == \
        ["styled-0-of-3.tfrecord", "styled-1-of-3.tfrecord", "styled-2-of-3.tfrecord"]


def test_arrays_of_any_shape_run_their_own_shards_of_one_partition(slurm, tmp_path, vgg19_mat, images):
    """A step (0-4:2), a list (1,3) and a resubmission of one task each run exactly their shards of the same five,
    with --shard-count; without it, an array that is not 0 to N-1 is refused by every task; and SHARD_OFFSET covers
    shards past the array's task IDs."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(5):
        write_image(photos / f"photo{seed}.png", 40, 32, seed=60 + seed)
    logs, args = folder_run(tmp_path, photos, vgg19_mat, images)
    jobs = {"step": (submit(slurm, "0-4:2", logs, [*args, "--shard-count", "5"]), (0, 2, 4)),
            "list": (submit(slurm, "1,3", logs, [*args, "--shard-count", "5"]), (1, 3)),
            "refused": (submit(slurm, "0-4:2", logs, args), (0, 2, 4))}
    for job, _ in jobs.values():
        wait_for(lambda job=job: not running(slurm, job), 600, f"array {job}")

    def log(job, task):
        return open(logs / f"{job}_{task}.out").read()
    for name in ("step", "list"):
        job, tasks = jobs[name]
        for task in tasks:
            assert f"Shard {task}-of-5: 1 of 5 items" in log(job, task), log(job, task)
            assert ran_items(log(job, task)) == [f"photo{task}"]  # shard k of the five: the k-th item
    job, tasks = jobs["refused"]
    assert all("pass --shard-count" in log(job, task) for task in tasks)
    assert done_items(tmp_path) == [f"photo{n}" for n in range(5)]

    environment = {**slurm, "SHARD_COUNT": "5", "SHARD_OFFSET": "3"}  # task 1 runs shard 4: done, skipped
    job = submit(environment, "1", logs, args)
    wait_for(lambda: not running(slurm, job), 600, f"array {job}")
    assert "Shard 4-of-5: 1 of 5 items; 1 finished before, skipped" in log(job, 1)


def test_a_resubmission_of_failed_tasks_from_0_runs_their_own_shards(slurm, tmp_path, vgg19_mat, images):
    """An array 0-2 whose tasks 0 and 1 fail (their items are broken), mended, then resubmitted as --array=0-1:
    without --shard-count both tasks refuse (the earlier runs split the data set into 3); with --shard-count 3,
    task k runs the item of shard k of 3, as the first submission's task k did."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(3):
        (photos / f"photo{seed}.png").write_text("not yet a picture\n") if seed < 2 else \
            write_image(photos / f"photo{seed}.png", 40, 32, seed=70 + seed)
    logs, args = folder_run(tmp_path, photos, vgg19_mat, images)

    def log(job, task):
        return open(logs / f"{job}_{task}.out").read()

    def submitted_and_ended(tasks, more=()):
        job = submit(slurm, tasks, logs, [*args, *more])
        wait_for(lambda: not running(slurm, job), 600, f"array {job}")
        return job

    first = submitted_and_ended("0-2")  # a whole array: its 3 tasks say the count
    assert [ran_items(log(first, task)) for task in range(3)] == [["photo0"], ["photo1"], ["photo2"]]
    assert "1 of 1 items failed" in log(first, 0) and "1 of 1 items failed" in log(first, 1)
    for seed in range(2):
        write_image(photos / f"photo{seed}.png", 40, 32, seed=70 + seed)  # mended
    refused = submitted_and_ended("0-1")
    for task in range(2):
        assert "split the data set into 3 shards" in log(refused, task) and ran_items(log(refused, task)) == []
    again = submitted_and_ended("0-1", ["--shard-count", "3"])
    for task in range(2):
        assert f"Shard {task}-of-3: 1 of 3 items" in log(again, task), log(again, task)
        assert ran_items(log(again, task)) == [f"photo{task}"]
    assert done_items(tmp_path) == ["photo0", "photo1", "photo2"]
