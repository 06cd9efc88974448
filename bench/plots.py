"""Pictures for the docs: total loss against wall time for the routes the benchmark compares, a strip of a film's
frames, and the flicker and seam figures as a bar chart.

    python bench/plots.py --content content/deadpool.jpg --style styles/guernica.jpg   # a few minutes on 2 cores
    python bench/plots.py --content photo.jpg --style painting.jpg --width 160 --height 120 --out-dir plots

- docs/loss-against-time.png: each route (the CS20 defaults, 300 Adam steps; 30 L-BFGS steps; --fast; any
  --route given) run once by style_transfer.py as a user runs it, in a fresh process and folder, with
  --log-every 1; its total_loss read back from its TensorBoard events (scalar and wall time of each step) and
  drawn on a log scale against the seconds since its first step, whole and its first seconds. The legend gives
  each route's whole-process time, start-up included; a Markdown table of the routes is printed.
- docs/film-strip.png: a camera panning over the content image (3 pixels a frame), stylised as a film and frame by
  frame (each frame a still image): a few frames of each, and under them each frame's change from the previous one
  moved with the pan (what is left is flicker).
- docs/flicker-and-seams.png: the flicker (bench/bench.py --video) and seam (bench/tiles.py) figures the docs
  report, as bars; they are not measured here (FLICKER and SEAMS below say where they come from).

The weights are random (real shapes, a file as large as the real one) unless --vgg is given: step times do not
depend on the values, but the loss values and the pictures do, so the plots compare loss, not looks.
"""

import argparse
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
SCRIPT = os.path.join(PROJECT, "style_transfer.py")
sys.path[:0] = [PROJECT, os.path.join(PROJECT, "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROUTES = {"CS20 defaults (Adam, 300 steps)": [],
          "--optimizer lbfgs --iterations 30": ["--optimizer", "lbfgs", "--iterations", "30"],
          "--fast": ["--fast"]}

# Not measured here: the figures of the runs the docs report (docs/films.md, docs/large-images.md).
FIGURES_SOURCE = ("figures from bench/bench.py --video and bench/tiles.py, one run each on a 2-core AMD EPYC "
                  "cloud VM")
FLICKER = [("frame by frame\n(each a still image)", 21.0), ("film,\n--temporal-weight 1e3\n(the default)", 0.392),
           ("film,\n--temporal-weight 1e4", 0.289)]  # bench/bench.py --sizes --video 6: 333x250, 30 L-BFGS steps
SEAMS = [("3840x2160, bf16,\ntiled by itself\n(15 tiles of 832 px)", 1.03),
         ("1024x768,\n--tile 512\n(6 tiles)", 1.06),
         ("3840x2160, fp32,\nnear the seams\n(near its edges: 0.99)", 1.37)]  # bench/tiles.py: L-BFGS, --iterations 20
SEAM_GOAL = 1.1


def processor():
    """'2 cores, <model name>' from /proc/cpuinfo (or the platform's name for it)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), None)
    except OSError:
        model = None
    if not model:
        import platform

        model = platform.processor() or platform.machine() or "unknown processor"
    return f"{os.cpu_count()} cores, {model}"


def random_weights(folder):
    """A random-weights .mat as large as the real one (real shapes, fc layers included), written once."""
    from bench import default_inputs

    return default_inputs(folder)[0]


def run_style_transfer(argv, folder):
    """style_transfer.py in `folder`, in a process of its own: (whole-process seconds, its stdout). Fails loudly."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, SCRIPT, *argv], cwd=folder, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"style_transfer.py {shlex.join(argv)} failed ({done.returncode}): "
                         f"{done.stderr.strip()[-800:]}")
    return seconds, done.stdout


def scale_starts(stdout):
    """The first step of each scale, from the "Scale i/n: WxH, steps A to B" lines ([1] for a single scale)."""
    return [int(step) for step in re.findall(r"^Scale \d+/\d+: \S+, steps (\d+) to", stdout, re.MULTILINE)] or [1]


def scalar_curve(log_dir, tag="total_loss"):
    """[(step, wall time, value)] of a scalar in every event file under log_dir, by step (the last event of a step
    wins)."""
    from runner.tf_setup import tf

    by_step = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True)):
        if f"{os.sep}replaced-" in path:
            continue
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    by_step[event.step] = (event.step, event.wall_time, value.simple_value)
    return [by_step[step] for step in sorted(by_step)]


def run_routes(routes, common, runs_dir):
    """Each route in a fresh folder under runs_dir: {name: {"seconds", "curve", "argv"}} (also saved as runs.json,
    so that --from-runs can draw the plot again)."""
    results = {}
    for index, (name, argv) in enumerate(routes.items()):
        folder = os.path.join(runs_dir, f"route{index}")
        os.makedirs(folder, exist_ok=True)
        print(f"{name}: style_transfer.py {shlex.join(argv)}", file=sys.stderr, flush=True)
        seconds, stdout = run_style_transfer([*common, "--log-every", "1", *argv], folder)
        curve = scalar_curve(os.path.join(folder, "graphs", "style_transfer"))
        results[name] = {"argv": argv, "seconds": seconds, "curve": curve, "scale_starts": scale_starts(stdout)}
        print(f"  {seconds:.1f} s, {len(curve)} steps, final total loss {final_loss(results[name]):.3g}",
              file=sys.stderr)
    with open(os.path.join(runs_dir, "runs.json"), "w") as file:
        json.dump(results, file)
    return results


def full_size(result):
    return [point for point in result["curve"] if point[0] >= result.get("scale_starts", [1])[-1]]


def final_loss(result):
    """The loss of the final image, as bench/bench.py counts it: with L-BFGS the best evaluated at the output size
    (the image it keeps), with Adam the last reported."""
    losses = [value for _, _, value in full_size(result)]
    return min(losses) if "lbfgs" in result["argv"] or "--fast" in result["argv"] else losses[-1]


def reached(result, goal):
    """Seconds from the run's first step until a loss at the output size is at or below goal, or None."""
    first = result["curve"][0][1]
    return next((wall_time - first for _, wall_time, value in full_size(result) if value <= goal), None)


def loss_table(results):
    """A Markdown table of the routes: steps, final loss, whole process, time to the CS20 defaults' final loss."""
    goal = final_loss(next(iter(results.values())))
    lines = ["| route | steps | final total loss | whole process (s) | from its first step to the CS20 defaults' "
             "final loss (s) |", "| --- | --- | --- | --- | --- |"]
    for name, result in results.items():
        at = reached(result, goal)
        lines.append(f"| {name} | {result['curve'][-1][0]} | {final_loss(result):.3g} | {result['seconds']:.0f} | "
                     f"{'not reached' if at is None else f'{at:.0f}'} |")
    return "\n".join(lines)


def plot_loss_against_time(results, path, size, cpu):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (whole, early) = plt.subplots(1, 2, figsize=(12, 5.4), dpi=110, sharey=True,
                                          gridspec_kw={"width_ratios": [3, 2]})
    goal = final_loss(next(iter(results.values())))
    ends = []
    for name, result in results.items():
        first = result["curve"][0][1]
        ends.append(result["curve"][-1][1] - first)
        starts = [*result.get("scale_starts", [1]), float("inf")]
        color = None
        for start, end in zip(starts, starts[1:]):  # each scale apart: the gaps between them are its set-up
            part = [(wall_time - first, value) for step, wall_time, value in result["curve"] if start <= step < end]
            full = end == float("inf")
            for axes in (whole, early):
                line, = axes.plot(*zip(*part), color=color, linewidth=1.6 if full else 1,
                                  linestyle="-" if full else ":",
                                  label=f"{name}: {result['curve'][-1][0]} steps, {result['seconds']:.0f} s whole "
                                        "process" if full else None)
                color = line.get_color()
    # L-BFGS's line search evaluates some points far above the rest: the axis stops at the runs' starting loss.
    values = [value for result in results.values() for _, _, value in result["curve"]]
    whole.set_ylim(min(values) / 1.5, 2 * max(result["curve"][0][2] for result in results.values()))
    early.set_xlim(-0.02 * max(ends[1:] or ends), 1.1 * max(ends[1:] or ends))
    for axes in (whole, early):
        axes.axhline(goal, color="grey", linestyle="--", linewidth=1)
        axes.set_yscale("log")
        axes.set_xlabel("seconds since the run's first step")
        axes.grid(True, which="both", alpha=0.25)
    early.annotate("the CS20 defaults' final loss", (early.get_xlim()[1], goal), xytext=(-4, -4),
                   textcoords="offset points", ha="right", va="top", color="dimgrey", fontsize=9)
    whole.set_ylabel("total loss (log scale)")
    whole.legend(loc="upper right", fontsize=9)
    whole.set_title("whole runs", fontsize=10)
    early.set_title("the first seconds", fontsize=10)
    figure.suptitle(f"Total loss against time at {size}, one run each on a shared machine ({cpu})\n"
                    "random VGG-19 weights: this compares loss, not looks", fontsize=11)
    figure.text(0.01, 0.01, "From style_transfer.py's TensorBoard events (--log-every 1), drawn by bench/plots.py. "
                "Dotted: --fast's coarse scales (smaller images: their losses do not compare).\nLosses far above "
                "the runs' starting loss (points L-BFGS's line search tried) are cut off.", fontsize=7.5,
                color="dimgrey")
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    figure.savefig(path)
    plt.close(figure)


def panning_clip(content, folder, width, height, frames):
    """A camera panning over the content image, 3 pixels to the right a frame and 1 down, as bench/bench.py's."""
    os.makedirs(folder, exist_ok=True)
    with Image.open(content) as image:
        scene = image.convert("RGB").resize((width * 5 // 4 + 3 * frames, height * 5 // 4))
        for index in range(frames):
            scene.crop((3 * index, index, 3 * index + width, index + height)).save(
                os.path.join(folder, f"{index + 1:03d}.png"))
    return folder


FILM_RUNS = {"film (--video, --temporal-weight 1e3)": ("film-video", "outputs/frames/*.png"),
             "frame by frame (each a still image)": ("film-frames", "outputs/*/final.png")}


def film_strip(common, content, runs_dir, path, width, height, frames, steps, cpu):
    """The same panning clip stylised as a film and frame by frame (film.json in runs_dir says how), then drawn."""
    clip = panning_clip(content, os.path.join(runs_dir, "film"), width, height, frames)
    argv = [*common, "--content", clip, "--width", str(width), "--height", str(height), "--optimizer", "lbfgs",
            "--iterations", str(steps), "--log-every", str(steps)]
    for name, (folder, _) in FILM_RUNS.items():
        os.makedirs(os.path.join(runs_dir, folder), exist_ok=True)
        print(f"{name}: {frames} frames at {width}x{height}", file=sys.stderr, flush=True)
        more = ["--video", "--frame-steps", str(steps)] if folder == "film-video" else []
        run_style_transfer([*argv, *more], os.path.join(runs_dir, folder))
    with open(os.path.join(runs_dir, "film.json"), "w") as file:
        json.dump({"width": width, "height": height, "steps": steps, "cpu": cpu}, file)
    draw_film_strip(runs_dir, path)


def draw_film_strip(runs_dir, path):
    """Each way's frames in a row, and below them each frame's change from the previous one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(os.path.join(runs_dir, "film.json")) as file:
        settings = json.load(file)
    rows = {name: [np.asarray(Image.open(frame).convert("RGB"))
                   for frame in sorted(glob.glob(os.path.join(runs_dir, folder, pattern)))]
            for name, (folder, pattern) in FILM_RUNS.items()}
    frames = len(next(iter(rows.values())))
    # The pan moves frame t's picture by (-3, -1) pixels from frame t-1's: moved back by that, the previous
    # stylised frame lines up with this one, and what still differs is flicker.
    figure, grid = plt.subplots(2 * len(rows), frames, dpi=80, squeeze=False,
                                figsize=(2.4 * frames, 2 * len(rows) * 2.4 * settings["height"] / settings["width"]
                                         + 1.2))
    for index, (name, images) in enumerate(rows.items()):
        pictures, changes = grid[2 * index], grid[2 * index + 1]
        for number, image in enumerate(images, start=1):
            pictures[number - 1].imshow(image, interpolation="nearest")
            pictures[number - 1].set_title(f"frame {number}", fontsize=9)
            if number > 1:
                change = np.abs(image[:-1, :-3].astype(float) - images[number - 2][1:, 3:]).mean(axis=2)
                changes[number - 1].imshow(np.minimum(4 * change, 255), cmap="gray", vmin=0, vmax=255,
                                           interpolation="nearest")
                changes[number - 1].set_title(f"change from frame {number - 1}: {change.mean():.1f}", fontsize=8)
        for axes in (*pictures, *changes):
            axes.set_xticks([]), axes.set_yticks([])
        changes[0].axis("off")
        pictures[0].set_ylabel(name.replace(" (", "\n("), fontsize=9)
        changes[1].set_ylabel("|frame - previous frame,\nmoved with the pan| x 4", fontsize=8)
    figure.suptitle(f"A camera panning 3 px a frame, {settings['width']}x{settings['height']}, {settings['steps']} "
                    f"L-BFGS steps a frame ({settings['cpu']})\nrandom weights, so texture, not style: look at the "
                    "rows of changes", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)  # a third of the bytes, as good


def plot_flicker_and_seams(path, source):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.4), dpi=110, gridspec_kw={"width_ratios": [3, 2]})
    names, values = zip(*FLICKER)
    bars = left.bar(range(len(values)), values, color=["#b0b0b0", "#1f77b4", "#5fa2dd"])
    left.bar_label(bars, [f"{value:g}" for value in values], fontsize=9)
    left.set_xticks(range(len(values)), names, fontsize=8)
    left.set_ylabel("flicker: mean of mask · |out(t) − warp(out(t−1))|")
    left.set_title("Films: flicker over a 6-frame pan, 333x250 (lower is steadier)", fontsize=10)
    names, values = zip(*SEAMS)
    bars = right.bar(range(len(values)), values, color="#2ca02c", width=0.55)
    right.bar_label(bars, [f"{value:g}" for value in values], label_type="center", color="white", fontsize=10)
    right.axhline(1.0, color="grey", linewidth=1)
    right.axhline(SEAM_GOAL, color="#d62728", linestyle="--", linewidth=1)
    right.annotate(f"goal: at most {SEAM_GOAL}", (-0.55, SEAM_GOAL), xytext=(0, 3), textcoords="offset points",
                   ha="left", fontsize=8, color="#d62728")
    right.set_ylim(0, 1.5)
    right.set_xlim(-0.6, len(values) - 0.4)
    right.set_xticks(range(len(values)), names, fontsize=8)
    right.set_ylabel("gradient near tile edges (or seams) / elsewhere")
    right.set_title("Large images: seams (1.0: none)", fontsize=10)
    figure.suptitle("Random VGG-19 weights: these figures compare steadiness and seams, not looks", fontsize=11)
    figure.text(0.01, 0.01, source, fontsize=8, color="dimgrey")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.savefig(path)
    plt.close(figure)


def route(text):
    """--route 'NAME=OPTIONS', e.g. 'bf16=--precision bf16'."""
    name, equals, options = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=OPTIONS")
    return name.strip(), shlex.split(options)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--content", required=True, help="content image (CS20's: deadpool.jpg)")
    parser.add_argument("--style", required=True, help="style image (CS20's: guernica.jpg)")
    parser.add_argument("--vgg", help="weights file (default: a random one as large as the real one, written once "
                                      "in bench/.cache)")
    parser.add_argument("--width", type=int, default=333)
    parser.add_argument("--height", type=int, default=250)
    parser.add_argument("--route", type=route, action="append", default=[], metavar="NAME=OPTIONS",
                        help="also run this route (e.g. 'bf16=--precision bf16'); may be given several times")
    parser.add_argument("--film-frames", type=int, default=4, help="frames in the film strip (0: no strip)")
    parser.add_argument("--film-size", default="160x120", help="the film strip's frame size, WIDTHxHEIGHT")
    parser.add_argument("--film-steps", type=int, default=30, help="L-BFGS steps of each frame in the strip")
    parser.add_argument("--out-dir", default=os.path.join(PROJECT, "docs"), help="where the PNGs go (default: docs)")
    parser.add_argument("--keep-runs", metavar="DIR", help="keep the runs' folders here (default: a temporary one)")
    parser.add_argument("--from-runs", metavar="DIR",
                        help="draw the plots again from a --keep-runs folder (its runs.json and film runs), without "
                             "running")
    args = parser.parse_args(argv)
    for path in (args.content, args.style, *([args.vgg] if args.vgg else [])):
        if not os.path.isfile(path):
            parser.error(f"{path} not found")
    if args.keep_runs and os.path.exists(args.keep_runs) and os.listdir(args.keep_runs):
        parser.error(f"--keep-runs {args.keep_runs} is not empty: every run needs a fresh folder")
    os.makedirs(args.out_dir, exist_ok=True)
    cpu = processor()
    size = f"{args.width}x{args.height}"

    plot_flicker_and_seams(os.path.join(args.out_dir, "flicker-and-seams.png"), FIGURES_SOURCE)
    if args.from_runs:
        with open(os.path.join(args.from_runs, "runs.json")) as file:
            results = json.load(file)
        plot_loss_against_time(results, os.path.join(args.out_dir, "loss-against-time.png"), size, cpu)
        if os.path.exists(os.path.join(args.from_runs, "film.json")):
            draw_film_strip(args.from_runs, os.path.join(args.out_dir, "film-strip.png"))
        print(loss_table(results))
        return 0

    vgg = os.path.abspath(args.vgg or random_weights(os.path.join(HERE, ".cache")))
    content, style = os.path.abspath(args.content), os.path.abspath(args.style)
    common = ["--vgg", vgg, "--content", content, "--style", style]
    keep = tempfile.TemporaryDirectory() if not args.keep_runs else None
    runs_dir = os.path.abspath(args.keep_runs or keep.name)
    cache = tempfile.TemporaryDirectory()  # a weights cache of the plots' own, filled by a first 1-step run
    os.environ["STYLE_TRANSFER_CACHE"] = cache.name
    try:
        warm = os.path.join(runs_dir, "warm-up")
        os.makedirs(warm, exist_ok=True)
        run_style_transfer([*common, "--iterations", "1", "--width", "64", "--height", "48"], warm)
        routes = {**ROUTES, **dict(args.route)}
        results = run_routes(routes, [*common, "--width", str(args.width), "--height", str(args.height)], runs_dir)
        plot_loss_against_time(results, os.path.join(args.out_dir, "loss-against-time.png"), size, cpu)
        print(f"{cpu}; {size}; random weights" if not args.vgg else f"{cpu}; {size}; {args.vgg}")
        print(loss_table(results))
        if args.film_frames:
            width, height = map(int, args.film_size.split("x"))
            film_strip(["--vgg", vgg, "--style", style], content, runs_dir,
                       os.path.join(args.out_dir, "film-strip.png"), width, height, args.film_frames,
                       args.film_steps, cpu)
    finally:
        cache.cleanup()
        if keep:
            keep.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
