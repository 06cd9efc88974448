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
    # Task 0 runs photo0 and photo3: kill it, without warning, once photo0 has a checkpoint (200 steps leave
    # some seconds to do so: an item's steps are fast at this size, and its graph is built once per task; 400 leave
    # enough that photo0 is still running when the kill lands, which the rerun's "Resuming" line shows).
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
    rerun_logs = [open(logs / f"{rerun}_{task}.out").read() for task in range(3)]
    assert all(f"Shard {task}-of-3" in log and "finished before, skipped" in log for task, log in enumerate(rerun_logs))
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
    logs = tmp_path / "logs"
    logs.mkdir()
    work = tmp_path / "work"
    args = ["--vgg", vgg19_mat[0], "--content", str(photos), "--style", images["style"], "--width", "40", "--height",
            "32", "--iterations", "2", "--checkpoint-dir", str(work / "c"), "--log-dir", str(work / "g"),
            "--output-dir", str(work / "o")]
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
    job, tasks = jobs["refused"]
    assert all("pass --shard-count" in log(job, task) for task in tasks)
    entries = [json.loads(line) for name in sorted(os.listdir(work / "o")) if name.startswith("manifest-")
               for line in open(work / "o" / name)]
    assert sorted(entry["name"] for entry in entries if entry["status"] == "done") == [f"photo{n}" for n in range(5)]

    environment = {**slurm, "SHARD_COUNT": "5", "SHARD_OFFSET": "3"}  # task 1 runs shard 4: done, skipped
    job = submit(environment, "1", logs, args)
    wait_for(lambda: not running(slurm, job), 600, f"array {job}")
    assert "Shard 4-of-5: 1 of 5 items; 1 finished before, skipped" in log(job, 1)
