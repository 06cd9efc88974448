"""Benchmark: where a run's memory goes, stage by stage, and what holding the weights as graph constants costs.

    python bench/memory.py                       # 333x250, random weights as large as the real ones (a minute)
    python bench/memory.py --sizes 333x250 1024x768 --vgg imagenet-vgg-verydeep-19.mat
    python bench/memory.py --precision bf16      # the network in bfloat16

Each column is a fresh process that goes through a run's stages as style_transfer.py does (its options' defaults,
its targets, its graph, its Session configuration, CS20's Adam steps) and records, after each stage, its resident
memory and the peak so far (VmRSS and VmHWM, as `ru_maxrss` counts it), and how much of the resident memory is the
libraries' mapped files rather than the process's own (anonymous) memory. The stages:
- `import`: TensorFlow and the tool's modules; `weights`: the weights read (from the weights cache, filled first);
- `graph`: the training graph built (the targets' path through the network with it);
- `targets`: the style's statistics and the content's features, computed in the training Session;
- `initialised`: the image and Adam's state;
- `step 1`, `step N`: the steps (the first one also optimises the graph and prepares the kernels).

Two ways of holding the weights are compared, the graph otherwise the same:
- `constants`: as the tool (and CS20) does: every kernel and bias a tf.constant of the training graph;
- `variables`: non-trainable variables fed once at initialisation (not what the tool does): what the constants
  cost, in memory and in seconds per step.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path[:0] = [HERE, PROJECT]

WAYS = ("constants", "variables")


def memory_now():
    """(resident bytes, peak resident bytes, resident bytes of mapped files) of this process."""
    fields = {}
    for line in open("/proc/self/status"):
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssFile"):
            fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"], fields["RssFile"]


def measure(argv, way, steps):
    """In this process: a run's stages, its memory printed as a JSON line after each."""
    started = time.perf_counter()

    def record(stage, **extra):
        rss, peak, files = memory_now()
        print(json.dumps({"stage": stage, "rss": rss, "peak": peak, "files": files,
                          "seconds": time.perf_counter() - started, **extra}), flush=True)

    import load_vgg
    import style_transfer
    from runner import options
    from runner.inputs import prepare_work
    from runner.tf_setup import SESSION_CONFIG, tf
    record("import")
    args = options.parse_args(argv)
    work = prepare_work(args)
    job = work.make_job(work.items[0], own_folders=False)
    problem, images = job.problem, job.plan.images_at(0)
    record("weights")
    weight_feeds = {}
    if way == "variables":
        def weight_variables(weights, precision):  # in place of load_vgg.weight_constants
            held = {}
            numpy_type = load_vgg.PRECISIONS[precision].as_numpy_dtype
            for name, arrays in weights.kernels.items():
                placeholders = [tf.placeholder(load_vgg.PRECISIONS[precision], array.shape) for array in arrays]
                weight_feeds.update(zip(placeholders, [array.astype(numpy_type) for array in arrays]))
                held[name] = tuple(tf.Variable(placeholder, trainable=False, collections=[tf.GraphKeys.LOCAL_VARIABLES])
                                   for placeholder in placeholders)  # not the model's own: initialised here
            return held
        load_vgg.weight_constants = weight_variables
    model = style_transfer.StyleTransfer(problem, job.weights, style_transfer.problem_losses(problem)).build()
    with model.graph.as_default():
        initialize_weights = tf.local_variables_initializer()  # the weights' variables, if they are variables
    model.graph.finalize()
    record("graph")
    start = style_transfer.initial_image(problem, images.content, images.start_style, job.weights.mean_pixel)
    with tf.Session(graph=model.graph, config=SESSION_CONFIG) as sess:
        if weight_feeds:  # the weights' variables first: the targets are computed with them
            sess.run(initialize_weights, weight_feeds)
        model.use_targets(model.targets(sess, images, problem))
        record("targets")
        model.start(sess, start)
        record("initialised")
        reports = model.steps(sess, steps)
        next(reports)
        record("step 1")
        seconds = [report.seconds for report in reports]
        record(f"step {steps}", seconds_per_step=min(seconds))


def measured(vgg, images, size, way, steps, precision):
    """The stages' records of a fresh process measuring `way` at `size`."""
    width, height = size.split("x")
    argv = ["--vgg", vgg, "--content", images[0], "--style", images[1], "--width", width, "--height", height]
    with tempfile.TemporaryDirectory() as folder:
        finished = subprocess.run([sys.executable, os.path.abspath(__file__), "--measure", way, "--steps", str(steps),
                                   "--precision", precision, "--", *argv], cwd=folder, capture_output=True, text=True)
    if finished.returncode != 0:
        raise SystemExit(f"measuring {way} at {size} failed: {finished.stderr.strip()[-800:]}")
    return [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]


def table(size, records, tool_peak):
    """One Markdown table: a row per stage, the resident memory and the peak so far of each way."""
    gigabytes = lambda count: f"{count / 1e9:.2f}"  # noqa: E731
    print(f"At {size} (GB; resident now / peak so far; of it, mapped library files):\n")
    print("| stage | " + " | ".join(f"{way}: resident / peak | {way}: files" for way in WAYS) + " |")
    print("|" + " --- |" * (1 + 2 * len(WAYS)))
    for index, stage in enumerate(record["stage"] for record in records[WAYS[0]]):
        cells = []
        for way in WAYS:
            record = records[way][index]
            cells += [f"{gigabytes(record['rss'])} / {gigabytes(record['peak'])}", gigabytes(record["files"])]
        print(f"| {stage} | " + " | ".join(cells) + " |")
    steps = {way: records[way][-1]["seconds_per_step"] for way in WAYS}
    print("\nSeconds per step (best): " + ", ".join(f"{way} {seconds:.3f}" for way, seconds in steps.items()) +
          f". style_transfer.py itself, the same options, whole process: peak {gigabytes(tool_peak)} GB.\n")


def main():
    from bench import parser_with_inputs

    parser = parser_with_inputs(__doc__)
    parser.add_argument("--sizes", nargs="+", default=["333x250"])
    parser.add_argument("--steps", type=int, default=6, help="steps per process")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="the network's precision")
    parser.add_argument("--measure", choices=WAYS, help=argparse.SUPPRESS)  # the measuring process
    args, rest = parser.parse_known_args()
    if args.steps < 2:
        parser.error("--steps: at least 2 (the first step is measured apart from the others)")
    if args.measure:
        return measure([argument for argument in rest if argument != "--"] + ["--precision", args.precision],
                       args.measure, args.steps)

    from bench import default_inputs, timed_run
    vgg, images = default_inputs(os.path.join(HERE, ".cache"))
    vgg = args.vgg or vgg
    images = [args.content or images[0], args.style or images[1]]
    with tempfile.TemporaryDirectory() as folder:  # the weights cache filled, as every run but a first finds it
        timed_run(["--vgg", vgg, "--content", images[0], "--style", images[1], "--iterations", "1"], folder)
    for size in args.sizes:
        records = {way: measured(vgg, images, size, way, args.steps, args.precision) for way in WAYS}
        width, height = size.split("x")
        with tempfile.TemporaryDirectory() as folder:
            _, tool_peak = timed_run(["--vgg", vgg, "--content", images[0], "--style", images[1], "--width", width,
                                      "--height", height, "--iterations", str(args.steps), "--precision",
                                      args.precision], folder)
        table(size, records, tool_peak)


if __name__ == "__main__":
    main()
