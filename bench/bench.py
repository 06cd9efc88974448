"""Benchmark: seconds per step against this machine's own convolution peak, start-up time, memory, bytes.

    python bench/bench.py                 # 333x250, 512x384 and 1024x768; prints a Markdown table
    python bench/bench.py --vgg imagenet-vgg-verydeep-19.mat --sizes 333x250
    python bench/bench.py --precisions fp32 bf16 --optimizers 333x250 1024x768   # bfloat16 against float32

Every figure comes from this one run on this one machine, so the ratios hold even on a noisy shared host:
- peak: the best GFLOP/s of chains of 3x3 convolutions shaped like VGG-19's own layers, in TensorFlow, in
  the same configuration as the script (oneDNN, one op at a time), in each precision benchmarked (a step's
  "of peak" is against its own precision's);
- s/step: style_transfer.py run as a user runs it (a fresh process, the default logging and checkpoint
  cadence), from its step-1 progress line to its last one; outputs' cost: how much slower that is than
  the same run saving and logging nothing between its first and last step;
- GFLOP/step: the convolutions up to the deepest layer the losses use, forward plus the gradient with
  respect to the input (which costs what the forward pass does), counted from the layer table;
- start: process start to the end of step 1; `import tensorflow` alone is timed for comparison, and so is
  a whole 1-step run before the weights cache holds the file (the runs after it find it there);
- peak RSS of the whole process; bytes of one checkpoint; bytes of one loss / image summary event;
- a final image's loss "in fp32": scored as a whole by the float32 network (style_transfer.losses_of_run), so
  that runs in either precision compare.
Without --vgg it writes a random-weights .mat as large as the real one (real shapes, fc layers included).
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path[:0] = [PROJECT, os.path.join(PROJECT, "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import load_vgg  # noqa: E402
import matconvnet  # noqa: E402
import style_transfer  # noqa: E402
from runner import tf_setup  # noqa: E402
from runner.tf_setup import SESSION_CONFIG, tf  # noqa: E402

CS20_LAYERS = ["conv4_2", "conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]


def step_gflop(width, height, layers=CS20_LAYERS):
    """Forward convolutions up to the deepest layer, times two for the gradient with respect to the input."""
    deepest = load_vgg.deepest_layer_used([], layers)
    flop = 0
    for name in load_vgg.layers_up_to(deepest):
        if load_vgg.layer_kind(name) == "conv":
            layer_height, layer_width = load_vgg.layer_size(width, height, name)
            kernel_height, kernel_width, channels_in, channels_out = load_vgg.kernel_shape(name)
            flop += 2 * layer_width * layer_height * kernel_height * kernel_width * channels_in * channels_out
    return 2 * flop / 1e9


def conv_peak_gflops(precision="fp32", repeats=3):
    """Best GFLOP/s of chains of 3x3 SAME convolutions shaped like VGG-19's middle layers, in `precision`."""
    dtype = load_vgg.PRECISIONS[precision]
    best = 0.0
    for height, width, channels in [(63, 84, 256), (32, 42, 512), (125, 167, 128)]:
        graph = tf.Graph()
        with graph.as_default():
            rng = np.random.default_rng(0)  # a variable, not a constant: Grappler would fold a constant's chain
            net = image = tf.Variable(rng.standard_normal((1, height, width, channels)).astype(dtype.as_numpy_dtype))
            kernel = tf.constant(rng.standard_normal((3, 3, channels, channels)).astype(dtype.as_numpy_dtype) * 0.02)
            for _ in range(8):
                net = tf.nn.conv2d(net, kernel, strides=1, padding="SAME")
            total = tf.reduce_sum(tf.cast(net, tf.float32))
            with tf.Session(config=SESSION_CONFIG) as sess:
                sess.run(image.initializer)
                sess.run(total)
                for _ in range(repeats):
                    started = time.perf_counter()
                    sess.run(total)
                    seconds = time.perf_counter() - started
                    best = max(best, 8 * 2 * height * width * 9 * channels * channels / seconds / 1e9)
    return best


def import_seconds():
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import tensorflow"], check=True, capture_output=True)
    return time.perf_counter() - started


SCRIPT = os.path.join(PROJECT, "style_transfer.py")


def start_style_transfer(argv, cwd, script=SCRIPT):
    """style_transfer.py as a user runs it, in its own process, its output lines readable as they come."""
    return subprocess.Popen([sys.executable, script, *argv], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def timed_run(argv, cwd, script=SCRIPT):
    """Run style_transfer.py; return ({line: seconds since start}, peak RSS in bytes)."""
    started = time.perf_counter()
    process = start_style_transfer(argv, cwd, script)
    lines = {}
    for line in process.stdout:
        lines[line.strip()] = time.perf_counter() - started
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"style_transfer.py failed: {process.stderr.read().strip()[-500:]}")
    return lines, usage.ru_maxrss * 1024


def summary_event_bytes(log_dir):
    """Bytes of one loss-summary event and of one image-summary event, and of the whole log."""
    sizes = {"loss": [], "image": []}
    total = 0
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        total += os.path.getsize(path)
        for event in tf.train.summary_iterator(path):
            tags = [value.tag for value in event.summary.value]
            if "total_loss" in tags:
                sizes["loss"].append(len(event.SerializeToString()))
            elif any(tag.startswith("generated") for tag in tags):
                sizes["image"].append(len(event.SerializeToString()))
    return {kind: int(np.mean(values)) for kind, values in sizes.items() if values}, total


def seconds_per_step(lines, steps):
    """From the step-1 progress line to the last one, per step."""
    step_times = {step_of(line): seconds for line, seconds in lines.items() if line.startswith("step ")}
    return (step_times[steps] - step_times[1]) / (steps - 1), step_times[1]


def bench_size(width, height, steps, vgg, images, peaks, script=SCRIPT, precision="fp32"):
    """peaks: {precision: GFLOP/s}."""
    argv = ["--vgg", vgg, "--content", images[0], "--style", images[1], "--width", str(width),
            "--height", str(height), "--iterations", str(steps),
            *(["--precision", precision] if precision != "fp32" else [])]  # older checkouts (--scripts) lack it
    with tempfile.TemporaryDirectory() as folder:  # without checkpoints, images and summaries between
        quiet_seconds, _ = seconds_per_step(timed_run([*argv, "--save-every", "1000000", "--log-every", "1000000"],
                                                      folder, script)[0], steps)
    with tempfile.TemporaryDirectory() as folder:  # at the default cadence
        lines, rss = timed_run(argv, folder, script)
        step_seconds, first_step_seconds = seconds_per_step(lines, steps)
        checkpoint_bytes = sum(os.path.getsize(path) for path in
                               glob.glob(os.path.join(folder, "checkpoints", "style_transfer", f"ckpt-{steps}.*")))
        events, log_bytes = summary_event_bytes(os.path.join(folder, "graphs", "style_transfer"))
    gflop = step_gflop(width, height)
    return {"script": os.path.relpath(script, PROJECT), "precision": precision, "size": f"{width}x{height}",
            "steps": steps, "s/step": step_seconds, "GFLOP/step": gflop,
            "GFLOP/s": gflop / step_seconds, "of peak": gflop / step_seconds / peaks[precision],
            "outputs' cost": f"{step_seconds / quiet_seconds - 1:+.1%}",
            "start to step 1 (s)": first_step_seconds, "peak RSS (GB)": rss / 1e9,
            "checkpoint (MB)": checkpoint_bytes / 1e6, "loss event (B)": events.get("loss", 0),
            "image event (kB)": events.get("image", 0) / 1e3, "whole log (MB)": log_bytes / 1e6}


def compare_optimizers(vgg, images, width=333, height=250, precisions=("fp32",)):
    """The CS20 defaults (300 Adam steps), 30 L-BFGS steps and --fast at one size, in each precision: the loss of
    the final image as the run reports it and as the float32 network scores its saved file, and whole-process
    seconds against the CS20 defaults in fp32. L-BFGS's reported loss is the best it evaluated at the last scale
    (Adam's is that of the image its last step started from, as it reports it)."""
    from runner.images import ImageFiles

    weights = load_vgg.load_weights(vgg)
    files = ImageFiles(images[0], (images[1],), None, "noise")
    rows = []
    runs = {"CS20 defaults (adam, 300 steps)": [], "--optimizer lbfgs --iterations 30": ["--optimizer", "lbfgs",
                                                                                         "--iterations", "30"],
            "--fast": ["--fast"]}
    for name, argv in runs.items():
        for precision in precisions:
            with tempfile.TemporaryDirectory() as folder:
                started = time.perf_counter()
                lines, rss = timed_run(["--vgg", vgg, "--content", images[0], "--style", images[1], "--width",
                                        str(width), "--height", str(height), "--log-every", "1", *argv,
                                        "--precision", precision], folder)
                seconds = time.perf_counter() - started
                scored = float(style_transfer.losses_of_run(
                    os.path.join(folder, "checkpoints", "style_transfer", "run.json"),
                    os.path.join(folder, "outputs", "final.png"), weights, files)["total_loss"])
            text = list(lines)
            last_scale = max((index for index, line in enumerate(text) if line.startswith("Scale ")), default=0)
            losses = [total_loss(line) for line in text[last_scale:] if total_loss(line) is not None]
            final = min(losses) if "lbfgs" in " ".join(argv) or name == "--fast" else losses[-1]
            rows.append({"run": name, "precision": precision, "size": f"{width}x{height}", "steps": step_of(
                [line for line in text if total_loss(line) is not None][-1]), "final total loss": final,
                "final image's loss in fp32": scored, "whole process (s)": seconds, "peak RSS (GB)": rss / 1e9})
    for row in rows:
        row["time against the CS20 defaults"] = row["whole process (s)"] / rows[0]["whole process (s)"]
        same_run_fp32 = next(other for other in rows if other["run"] == row["run"] and other["precision"] == "fp32")
        row["loss against fp32's"] = row["final image's loss in fp32"] / same_run_fp32["final image's loss in fp32"]
    return rows


def scored_run(argv, vgg_weights, files):
    """Run style_transfer.py in a folder of its own: (whole-process seconds, its final image's loss as the float32
    network scores it, its progress lines)."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        lines, _ = timed_run(argv, folder)
        seconds = time.perf_counter() - started
        scored = float(style_transfer.losses_of_run(os.path.join(folder, "checkpoints", "style_transfer", "run.json"),
                                                    os.path.join(folder, "outputs", "final.png"), vgg_weights,
                                                    files)["total_loss"])
    return seconds, scored, list(lines)


def compare_style_losses(vgg, images, width=333, height=250, precision="fp32"):
    """For each --style-loss: the CS20 defaults (300 Adam steps) and the seconds L-BFGS and --fast take to reach
    the loss those 300 steps reach (each in its own loss: the three are not on one scale)."""
    common = ["--vgg", vgg, "--content", images[0], "--style", images[1], "--width", str(width), "--height",
              str(height), "--log-every", "1", "--precision", precision]
    rows = []
    for kind in ("gram", "mean-std", "w2"):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            lines, _ = timed_run([*common, "--style-loss", kind], folder)
            adam_seconds = time.perf_counter() - started
        goal = [total_loss(line) for line in lines if total_loss(line) is not None][-1]
        row = {"style loss": kind, "size": f"{width}x{height}", "precision": precision,
               "loss after 300 Adam steps": goal, "Adam (s)": adam_seconds}
        for route, argv in (("L-BFGS", ["--optimizer", "lbfgs", "--iterations", "300"]),
                            ("--fast", ["--fast", "--iterations", "300"])):
            coarse_steps = 60 if route == "--fast" else 0  # --fast's loss counts at full size, after its scales'

            def reached(line, goal=goal, coarse_steps=coarse_steps):
                return total_loss(line) is not None and total_loss(line) <= goal and step_of(line) > coarse_steps
            with tempfile.TemporaryDirectory() as folder:
                seconds, line = seconds_until([*common, "--style-loss", kind, *argv], folder, reached)
            row[f"{route} to that loss (s)"] = seconds
            row[f"{route} against Adam"] = seconds / adam_seconds
        rows.append(row)
    return rows


def compare_adam_craft(vgg, images, width=333, height=250, precision="fp32"):
    """Adam's craft at equal steps (300): the final image's loss (scored as a whole by the float32 network) with
    and without --average 0.99; and, coarse to fine (--scales 0.25 0.5 1, 100 steps each), with Adam's moments
    restarted at each scale and carried."""
    from runner.images import ImageFiles

    weights = load_vgg.load_weights(vgg)
    files = ImageFiles(images[0], (images[1],), None, "noise")
    common = ["--vgg", vgg, "--content", images[0], "--style", images[1], "--width", str(width), "--height",
              str(height), "--log-every", "100", "--precision", precision]
    scales = ["--scales", "0.25", "0.5", "1", "--scale-steps", "100"]
    runs = {"CS20 defaults": [], "--average 0.99": ["--average", "0.99"], "--scales, restart": scales,
            "--scales, --adam-across-scales carry": [*scales, "--adam-across-scales", "carry"],
            "--scales, carry, --average 0.99": [*scales, "--adam-across-scales", "carry", "--average", "0.99"]}
    rows = []
    for name, argv in runs.items():
        seconds, scored, _ = scored_run([*common, *argv], weights, files)
        rows.append({"run": name, "size": f"{width}x{height}", "precision": precision, "steps": 300,
                     "final image's loss in fp32": scored, "whole process (s)": seconds})
    for row in rows:
        row["against the CS20 defaults"] = row["final image's loss in fp32"] / rows[0]["final image's loss in fp32"]
    return rows


def fast_setup(vgg, images, precision, width=333, height=250):
    """Each scale's set-up in a --fast run: the seconds from the previous scale's last step to this scale's first,
    less a step of this scale (its median): what changing the size costs (targets, start image, the first step's
    preparation of the kernels), beside the steps themselves."""
    with tempfile.TemporaryDirectory() as folder:
        lines, _ = timed_run(["--vgg", vgg, "--content", images[0], "--style", images[1], "--width", str(width),
                              "--height", str(height), "--fast", "--precision", precision, "--log-every", "1"], folder)
    rows, scale, previous = [], None, None
    steps = {}  # scale -> [seconds at each step line]
    for line, seconds in lines.items():
        if line.startswith("Scale "):
            scale = line.split(",")[0]
        elif line.startswith("step ") and scale:
            steps.setdefault(scale, []).append(seconds)
    for name, times in steps.items():
        step = float(np.median(np.diff(times))) if len(times) > 2 else 0.0
        if previous is not None:
            rows.append({"precision": precision, "scale": name, "median s/step": step,
                         "set-up (s)": times[0] - previous - step})
        previous = times[-1]
    return rows


def seconds_until(argv, cwd, is_reached):
    """Run style_transfer.py until a stdout line is_reached (then stop it): (seconds since start, that line)."""
    started = time.perf_counter()
    process = start_style_transfer(argv, cwd)
    try:
        for line in process.stdout:
            if is_reached(line):
                return time.perf_counter() - started, line.strip()
        raise SystemExit(f"style_transfer.py {' '.join(argv)} ended without reaching its goal")
    finally:
        process.kill()
        process.wait()


def total_loss(line):
    """The total loss in a progress line ("step 12/300  total 1.2e+05 ..."), or None for other lines."""
    words = line.split()
    return float(words[3]) if len(words) > 3 and words[0] == "step" and words[2] == "total" else None


def step_of(line):
    return int(line.split()[1].split("/")[0])


def compare_scales(vgg, images, width=1024, steps=300, scales=("0.25", "0.5", "1"), scale_steps=100):
    """Time to a width-wide result at the loss single-scale Adam reaches in `steps` steps: single against
    coarse-to-fine (`scale_steps` at each coarser scale, then full size until the loss is as low)."""
    common = ["--vgg", vgg, "--content", images[0], "--style", images[1], "--width", str(width), "--log-every", "1",
              "--save-every", "50"]
    with tempfile.TemporaryDirectory() as folder:
        single_seconds, single_line = seconds_until([*common, "--iterations", str(steps)], folder,
                                                    lambda line: line.startswith(f"step {steps}/"))
    goal = total_loss(single_line)
    coarse_steps = scale_steps * (len(scales) - 1)
    with tempfile.TemporaryDirectory() as folder:
        multi_seconds, multi_line = seconds_until(
            [*common, "--scales", *scales, "--scale-steps", str(scale_steps), "--iterations",
             str(coarse_steps + 3 * steps)], folder,
            lambda line: total_loss(line) is not None and step_of(line) > coarse_steps and total_loss(line) <= goal)
    return [{"run": f"single scale, {steps} steps", "steps at full size": steps, "total loss": goal,
             "seconds to this loss": single_seconds},
            {"run": f"--scales {' '.join(scales)}, {scale_steps} steps at each coarser scale",
             "steps at full size": step_of(multi_line) - coarse_steps, "total loss": total_loss(multi_line),
             "seconds to this loss": multi_seconds}]


def bench_items(vgg, images, count=4, steps=30, width=333, height=250, more=(), script=SCRIPT, mixed=False):
    """A folder of `count` content images (crops of the content image) at the CS20 size, `steps` L-BFGS steps
    each: images per hour, and each item's overhead, everything but its steps, against the steps' own time.
    more: further options (--tile ...); script: the style_transfer.py to run. mixed: crops of different aspect
    ratios, run at --width `width` with each height following its photo (a data set of mixed sizes)."""
    with tempfile.TemporaryDirectory() as folder:
        photos = os.path.join(folder, "photos")
        os.makedirs(photos)
        with Image.open(images[0]) as content:
            for index in range(count):  # different crops: different items, of one size (or, mixed, of many)
                left = index * content.width // (4 * count)
                crop_width = content.width * 3 // 4 - (index * content.width // (2 * count) if mixed else 0)
                content.crop((left, 0, left + crop_width, content.height)).save(
                    os.path.join(photos, f"photo{index}.png"))
        started = time.perf_counter()
        size = ["--width", str(width)] if mixed else ["--width", str(width), "--height", str(height)]
        lines, rss = timed_run(["--vgg", vgg, "--content", photos, "--style", images[1], "--optimizer", "lbfgs",
                                "--iterations", str(steps), "--log-every", str(steps), *size, *more], folder,
                               script)
        seconds = time.perf_counter() - started
        with open(os.path.join(folder, "outputs", "manifest-0-of-1.jsonl")) as manifest:
            item_seconds = [json.loads(line)["seconds"] for line in manifest]
    step_seconds = [float(line.split(" s/step")[0].split()[-1]) for line in lines
                    if line.startswith(f"step {steps}/{steps} ")]  # each item's last progress line
    later = item_seconds[1:]  # the first item also reads the weights and starts TensorFlow's caches
    # A tiled item's global steps run on past `steps` (a tile's after another's): its steps are not timed apart.
    steps_time = steps * sum(step_seconds[1:]) / len(step_seconds[1:]) if len(step_seconds) > 1 else None
    return [{"script": os.path.relpath(script), "options": " ".join(more) or "-",
             "sizes": "mixed" if mixed else f"{width}x{height}", "items": count, "steps each": steps,
             "whole process (s)": seconds,
             "images per hour": 3600 * count / seconds, "seconds per item (after the first)": sum(later) / len(later),
             "of which steps (s)": steps_time if steps_time else "-",
             "per-item overhead": f"{sum(later) / len(later) / steps_time - 1:+.0%}" if steps_time else "-",
             "peak RSS (GB)": rss / 1e9}]


def bench_video(vgg, images, frames=8, steps=30, weights=("1e3", "1e4"), width=333, height=250, optimizer="lbfgs"):
    """A camera panning over the content image, `frames` frames at width x height, `steps` L-BFGS steps each
    (frame 1 too), or with Adam the CS20 defaults (300 steps; a film's later frames half as many): stylised as a
    film at each temporal weight, and frame by frame (each frame a still image, from the usual start). Flicker:
    the mean over the clip of mask · |out(t) - warp(out(t-1))| (runner/flow.py)."""
    from runner import flow, video

    with tempfile.TemporaryDirectory() as folder:
        film = os.path.join(folder, "film")
        os.makedirs(film)
        with Image.open(images[0]) as content:
            scene = content.convert("RGB").resize((width * 5 // 4 + 3 * frames, height * 5 // 4))
            for index in range(frames):  # 3 pixels to the right per frame, and a little down
                scene.crop((3 * index, index, 3 * index + width, index + height)).save(
                    os.path.join(film, f"{index + 1:03d}.png"))
        clip = video.read_clip(film, width, height).frames
        flows = [flow.flow(clip[index], clip[index - 1]) for index in range(1, frames)]
        masks = [flow.reliability(backward, flow.flow(clip[index], clip[index + 1]))
                 for index, backward in enumerate(flows)]
        common = ["--vgg", vgg, "--content", film, "--style", images[1], "--log-every", "1000", "--width", str(width),
                  "--height", str(height)]
        if optimizer == "lbfgs":
            common += ["--optimizer", "lbfgs", "--iterations", str(steps)]
        film_steps = ["--frame-steps", str(steps)] if optimizer == "lbfgs" else []
        runs = {"frame by frame": common}
        runs.update({f"film, --temporal-weight {weight}": [*common, "--video", *film_steps, "--temporal-weight", weight]
                     for weight in weights})
        rows = []
        for name, argv in runs.items():
            out = os.path.join(folder, name.replace(" ", "_").replace(",", ""))
            os.makedirs(out)
            started = time.perf_counter()
            timed_run(argv, out)
            seconds = time.perf_counter() - started
            pattern = "outputs/frames/*.png" if "--video" in argv else "outputs/*/final.png"
            stylised = [np.asarray(Image.open(path).convert("RGB"), np.float64)
                        for path in sorted(glob.glob(os.path.join(out, pattern)))]
            flicker = np.mean([flow.flicker(stylised[index + 1], flow.warp(stylised[index], backward), mask)
                               for index, (backward, mask) in enumerate(zip(flows, masks))])
            rows.append({"run": name, "optimizer": optimizer, "size": f"{width}x{height}", "frames": frames,
                         "steps each": steps if optimizer == "lbfgs" else "CS20", "whole process (s)": seconds,
                         "frames per minute": 60 * frames / seconds, "flicker": flicker})
        for row in rows:
            row["flicker against frame by frame"] = row["flicker"] / rows[0]["flicker"]
            row["time against frame by frame"] = row["whole process (s)"] / rows[0]["whole process (s)"]
    return rows


def print_table(rows):
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{value:.3g}" if isinstance(value, float) else str(value)
                                for value in row.values()) + " |")


def default_inputs(folder):
    """A random-weights .mat as large as the real one, and the CS20 images if they are at hand."""
    os.makedirs(folder, exist_ok=True)
    vgg = os.path.join(folder, "vgg19-random-weights.mat")
    if not os.path.exists(vgg):
        print(f"writing {vgg} (random weights, real shapes)", file=sys.stderr)
        matconvnet.write_vgg_mat(vgg, specs=matconvnet.layer_specs(real_fc=True))
    images = []
    for default, seed in [(os.path.join(PROJECT, "content", "deadpool.jpg"), 1),
                          (os.path.join(PROJECT, "styles", "guernica.jpg"), 2)]:
        if not os.path.exists(default):
            default = os.path.join(folder, f"image{seed}.png")
            pixels = np.random.default_rng(seed).uniform(0, 255, (60, 80, 3)).astype(np.uint8)
            Image.fromarray(pixels).resize((800, 600), Image.Resampling.BICUBIC).save(default)
        images.append(default)
    return vgg, images


def parser_with_inputs(description):
    """The benchmarks' command line, with the inputs every benchmark takes: --vgg, --content, --style."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vgg", help="weights file (default: a random one as large as the real one)")
    parser.add_argument("--content", help="content image (default: content/deadpool.jpg if present)")
    parser.add_argument("--style", help="style image (default: styles/guernica.jpg if present)")
    return parser


def main():
    parser = parser_with_inputs(__doc__)
    parser.add_argument("--sizes", nargs="*", default=["333x250", "512x384", "1024x768"])
    parser.add_argument("--steps", type=int, nargs="+", default=[40, 20, 6], help="steps per size")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"],
                        help="the network's precisions to compare, each size and route in each (default: fp32, and "
                             "bf16 where the processor computes it natively)")
    parser.add_argument("--scripts", nargs="+", default=[SCRIPT],
                        help="style_transfer.py of each checkout to time, size by size in turn (to compare two "
                             "versions in one run)")
    parser.add_argument("--optimizers", nargs="*", metavar="SIZE",
                        help="also compare the CS20 defaults (300 Adam steps), 30 L-BFGS steps and --fast at these "
                             "sizes (default 333x250): final loss and whole-process time")
    parser.add_argument("--items", type=int, default=0,
                        help="also run a folder of this many images at 333x250 (30 L-BFGS steps each): images per "
                             "hour and the per-item overhead")
    parser.add_argument("--style-losses", nargs="*", metavar="SIZE",
                        help="also, for each --style-loss at these sizes (default 333x250): 300 Adam steps, and the "
                             "time L-BFGS and --fast take to that loss (in the first of --precisions)")
    parser.add_argument("--adam-craft", nargs="*", metavar="SIZE",
                        help="also, at these sizes (default 333x250): 300 Adam steps with and without --average, and "
                             "coarse to fine with Adam's moments restarted and carried (in the first of --precisions)")
    parser.add_argument("--fast-setup", action="store_true",
                        help="also time each scale's set-up in a --fast run at 333x250, in each precision")
    parser.add_argument("--mixed-items", type=int, default=0,
                        help="also run a folder of this many images of different aspect ratios at --width 333 (30 "
                             "L-BFGS steps each): the per-item overhead when every item has a size of its own")
    parser.add_argument("--tiled-items", type=int, default=0,
                        help="also run a folder of this many images at 512x384 in tiles of 256 (20 L-BFGS steps: 10 "
                             "at half size, 10 a tile) with each of --scripts: seconds per item (graphs shared or not)")
    parser.add_argument("--video", type=int, default=0,
                        help="also stylise a panning clip of this many frames at 333x250 (30 L-BFGS steps each) "
                             "as a film and frame by frame: flicker and frames per minute")
    parser.add_argument("--temporal-weights", nargs="+", default=["1e3", "1e4"], help="with --video")
    parser.add_argument("--video-optimizers", nargs="+", choices=["lbfgs", "adam"], default=["lbfgs"],
                        help="with --video: L-BFGS (30 steps a frame) and/or Adam (the CS20 defaults)")
    parser.add_argument("--video-sizes", nargs="+", default=["333x250"], help="with --video")
    parser.add_argument("--scales", action="store_true",
                        help="also time a 1024-wide result at the loss of 300 single-scale steps, single against "
                             "coarse-to-fine (about 45 minutes here)")
    args = parser.parse_args()
    vgg, images = default_inputs(os.path.join(HERE, ".cache"))
    vgg = args.vgg or vgg
    images = [args.content or images[0], args.style or images[1]]

    precisions = args.precisions or (["fp32", "bf16"] if tf_setup.native_bfloat16() else ["fp32"])
    peaks = {precision: conv_peak_gflops(precision) for precision in precisions}
    import_time = import_seconds()
    cache = tempfile.TemporaryDirectory()  # an empty weights cache of the benchmark's own
    os.environ["STYLE_TRANSFER_CACHE"] = cache.name
    with tempfile.TemporaryDirectory() as folder:  # the first read of a weights file fills the cache
        cold_start = timed_run(["--vgg", vgg, "--content", images[0], "--style", images[1], "--iterations", "1"],
                               folder)
        cold_seconds, cold_rss = max(cold_start[0].values()), cold_start[1]
    rows = [bench_size(*map(int, size.split("x")), steps, vgg, images, peaks, os.path.abspath(script), precision)
            for size, steps in zip(args.sizes, args.steps + args.steps[-1:] * len(args.sizes))
            for script in args.scripts for precision in precisions]

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"Machine: {os.cpu_count()} cores ({cpu}), TensorFlow {tf.__version__}; weights file "
          f"{os.path.getsize(vgg) / 1e6:.0f} MB. 3x3-convolution peak measured in this run: "
          f"{', '.join(f'{peak:.0f} GFLOP/s in {precision}' for precision, peak in peaks.items())}; "
          f"`import tensorflow`: {import_time:.1f} s. A 1-step run at 333x250 with the weights cache empty (its "
          f"first run with this weights file): {cold_seconds:.1f} s, peak RSS {cold_rss / 1e9:.2f} GB; the runs "
          f"below find the cache filled.\n")
    if rows:
        print_table(rows)
    if args.optimizers is not None:
        print()
        print_table([row for size in args.optimizers or ["333x250"]
                     for row in compare_optimizers(vgg, images, *map(int, size.split("x")), precisions)])
    if args.scales:
        print()
        print_table(compare_scales(vgg, images))
    if args.items:
        print()
        print_table(bench_items(vgg, images, args.items))
    if args.style_losses is not None:
        print()
        print_table([row for size in args.style_losses or ["333x250"]
                     for row in compare_style_losses(vgg, images, *map(int, size.split("x")), precisions[0])])
    if args.adam_craft is not None:
        print()
        print_table([row for size in args.adam_craft or ["333x250"]
                     for row in compare_adam_craft(vgg, images, *map(int, size.split("x")), precisions[0])])
    if args.fast_setup:
        print()
        print_table([row for precision in precisions for row in fast_setup(vgg, images, precision)])
    if args.mixed_items:
        print()
        print_table(bench_items(vgg, images, args.mixed_items, mixed=True))
    if args.tiled_items:
        print()
        print_table([row for script in args.scripts for row in bench_items(
            vgg, images, args.tiled_items, steps=20, width=512, height=384, more=["--tile", "256"],
            script=os.path.abspath(script))])
    if args.video:
        print()
        print_table([row for size in args.video_sizes for optimizer in args.video_optimizers
                     for row in bench_video(vgg, images, args.video, weights=args.temporal_weights,
                                            width=int(size.split("x")[0]), height=int(size.split("x")[1]),
                                            optimizer=optimizer)])
    cache.cleanup()


if __name__ == "__main__":
    main()
