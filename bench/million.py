"""Benchmark: a data set of a million items, as its bookkeeping sees it.

    python bench/million.py                  # 1,000,000 records of 16x16 images, a folder of 100,000 files
    python bench/million.py --records 100000 --files 10000     # smaller, quicker

Every figure is from this one run on this machine, each step in a process of its own:
- listing: the items of a TFRecord file of --records records (names and offsets; no image held), sorted and
  sharded, in a fresh process: seconds and peak resident memory, against a process that only imports TensorFlow;
  first with no listing cache (the file is read), then again (its listing cache is read); the same for a folder of
  --files image files;
- a worker of `--shard 0/<records/10>` runs its 10 items (16x16, --iterations 1) and stops, with a manifest of
  --records 'done' lines of other workers in its --output-dir (none of them its items'); the same command run
  again exits after saying they are done: seconds and peak RSS of each, whole process, and seconds beyond start-up
  (a 1-step run of one image, whole process);
- `python -m runner.batch` summarising manifests of --records lines.
The data set is written once into bench/.cache/ and reused; the listing cache is a fresh folder of this run's.
"""

import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path[:0] = [HERE, PROJECT]
SCRIPT = os.path.join(PROJECT, "style_transfer.py")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bench import default_inputs, parser_with_inputs, print_table  # noqa: E402


def tiny_png(number):
    """A 16x16 PNG that differs from item to item (its colour follows the number)."""
    pixels = np.full((16, 16, 3), (number % 251, number // 251 % 251, 128), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_data_set(folder, records, files):
    """(a TFRecord file of `records` records in the common layout, a folder of `files` PNG files), written once."""
    from runner import tfrecords

    os.makedirs(folder, exist_ok=True)
    record_file = os.path.join(folder, f"tiny-{records}.tfrecord")
    if not os.path.exists(record_file):
        tfrecords.write_records(record_file, (tfrecords.common_example(f"photo{number:07d}.png", tiny_png(number),
                                                                       "png", 16, 16) for number in range(records)))
    image_folder = os.path.join(folder, f"tiny-{files}")
    if not os.path.isdir(image_folder):
        os.makedirs(image_folder + ".part", exist_ok=True)
        for number in range(files):
            with open(os.path.join(image_folder + ".part", f"photo{number:07d}.png"), "wb") as file:
                file.write(tiny_png(number))
        os.replace(image_folder + ".part", image_folder)
    return record_file, image_folder


def in_a_process(code, *args):
    """(seconds, peak RSS bytes, stdout) of `python -c code args...` in a fresh process."""
    started = time.perf_counter()
    finished = subprocess.run([sys.executable, "-c", code, *args], cwd=PROJECT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"failed: {finished.stderr[-2000:]}")
    peak = int(finished.stdout.strip().splitlines()[-1])
    return seconds, peak, finished.stdout


LIST = """
import resource, sys
from runner import batch
from runner.items import find_items
items = find_items([sys.argv[1]])
shard = batch.Shard(0, 100000)
mine = items[shard.index::shard.count]
print(len(items), len(mine), mine[0].name)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""

IMPORT_ONLY = """
import resource
from runner import batch, items, tfrecords
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


MEASURED = """
import os, resource, runpy, sys
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))  # as python SCRIPT puts the script's folder first
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}", file=sys.stderr)
"""


def timed_script(argv, cwd):
    """(seconds, exit code, stdout and stderr, peak RSS bytes) of style_transfer.py run as a user runs it."""
    started = time.perf_counter()
    finished = subprocess.run([sys.executable, "-c", MEASURED, SCRIPT, *argv], cwd=cwd, capture_output=True,
                              text=True)
    seconds = time.perf_counter() - started
    peak = max(int(line.split()[-1]) for line in finished.stderr.splitlines() if line.startswith("peak RSS "))
    return seconds, finished.returncode, finished.stdout + finished.stderr, peak


def million_manifest_lines(output_dir, lines, name="manifest-0-of-1.jsonl"):
    """A manifest of `lines` done items, as workers write them (their images not there: the summary reads lines, and
    a worker finds them not done)."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, name), "w") as file:
        for number in range(lines):
            file.write(json.dumps({"name": f"photo{number:07d}", "folder": f"photo{number:07d}", "source": "x",
                                   "output": f"photo{number:07d}/final.png", "status": "done", "reason": None,
                                   "loss": 1.0, "steps": 1, "seconds": 0.5}) + "\n")


def main():
    parser = parser_with_inputs(__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()
    cache = os.path.join(HERE, ".cache")
    vgg, images = default_inputs(cache)
    vgg, images = args.vgg or vgg, [args.content or images[0], args.style or images[1]]
    started = time.perf_counter()
    record_file, image_folder = write_data_set(cache, args.records, args.files)
    print(f"data set ready in {time.perf_counter() - started:.0f} s: {record_file} "
          f"({os.path.getsize(record_file) / 1e6:.0f} MB), {image_folder}", flush=True)
    rows = []
    _, baseline, _ = in_a_process(IMPORT_ONLY)
    listing_cache = tempfile.TemporaryDirectory()
    os.environ["STYLE_TRANSFER_CACHE"] = listing_cache.name  # the processes' cache folder: empty to begin with
    for what, path in ((f"list and shard {args.records:,} records, no listing cache", record_file),
                       (f"list and shard {args.records:,} records again, from the listing cache", record_file),
                       (f"list and shard a folder of {args.files:,} files", image_folder)):
        seconds, peak, _ = in_a_process(LIST, path)
        rows.append({"what": what, "seconds": seconds, "peak RSS (GB)": peak / 1e9,
                     "beyond": f"{(peak - baseline) / 1e9:.2f} GB beyond the imports"})
    shards = max(1, args.records // 10)
    with tempfile.TemporaryDirectory() as folder:
        one = ["--vgg", vgg, "--content", images[0], "--style", images[1], "--width", "16", "--height", "16",
               "--iterations", "1", "--save-every", "1"]
        start_up, code, out, start_up_peak = timed_script(one, folder)
        assert code == 0, out
        others = os.path.join(folder, "many")
        million_manifest_lines(others, args.records, name="manifest-0-of-1.jsonl")  # other workers' lines
        worker = ["--vgg", vgg, "--content", record_file, "--style", images[1], "--width", "16", "--height", "16",
                  "--iterations", "1", "--save-every", "1", "--shard", f"0/{shards}", "--output-dir", "many",
                  "--checkpoint-dir", "many-checkpoints", "--log-dir", "many-graphs"]
        for what in (f"a worker of --shard 0/{shards} runs its 10 items, {args.records:,} manifest lines beside",
                     "the same worker again: all done"):
            seconds, code, out, peak = timed_script(worker, folder)
            assert code == 0, out[-2000:]
            rows.append({"what": what, "seconds": seconds, "peak RSS (GB)": peak / 1e9,
                         "beyond": f"{seconds - start_up:.1f} s beyond start-up"})
        rows.append({"what": "start-up: a 1-step run of one 16x16 image", "seconds": start_up,
                     "peak RSS (GB)": start_up_peak / 1e9, "beyond": "-"})
        million_manifest_lines(os.path.join(folder, "summary"), args.records)
        started = time.perf_counter()
        finished = subprocess.run([sys.executable, "-m", "runner.batch", os.path.join(folder, "summary")],
                                  cwd=PROJECT, capture_output=True, text=True)
        assert finished.returncode == 0, finished.stderr
        rows.append({"what": f"python -m runner.batch over {args.records:,} manifest lines",
                     "seconds": time.perf_counter() - started, "peak RSS (GB)": "-", "beyond": "-"})
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"Machine: {os.cpu_count()} cores ({cpu}); peak RSS of a process importing the tool's modules only: "
          f"{baseline / 1e9:.2f} GB; this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB\n")
    print_table(rows)


if __name__ == "__main__":
    main()
