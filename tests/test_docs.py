"""The docs (README.md, docs/*.md): their links lead to files and headings, docs/options.md is `--help` as it is,
and every command in their code blocks runs, at 40x32 on the test weights and images, so that none of them rots.

    python tests/test_docs.py --write     # write docs/options.md's generated part again from --help

A command block runs in a fresh folder, its commands in order (a later one may use what an earlier one wrote). In
a `python style_transfer.py ...` command, the files it names are made there first (images, folders of them, a
small clip, TFRecords packed by runner.tfrecords), --vgg is the test weights, the size 40x32 and the steps a few
(--scale-steps, --frame-steps, --frames and --tile cut to match); it must exit 0 and leave its final output.
Other tools: runner's modules answer --help and run, in this process; bench/'s scripts answer --help with every
option the command gives (they are not run: they take minutes); sbatch, kubectl and pip are not run, but the files
they name must exist, and the options sbatch passes on must be style_transfer.py's.
"""

import contextlib
import functools
import glob
import importlib
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":  # --write: run as a script, without pytest's paths
    sys.path[:0] = [PROJECT, os.path.join(PROJECT, "tests")]

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from conftest import run_main, write_image  # noqa: E402

DOCS = ["README.md", *sorted(os.path.relpath(path, PROJECT)
                             for path in glob.glob(os.path.join(PROJECT, "docs", "*.md")))]
OPTIONS_PAGE = os.path.join(PROJECT, "docs", "options.md")
HELP_BEGIN = "<!-- begin: python style_transfer.py --help, as Python {version} prints it -->"
HELP_END = "<!-- end: python style_transfer.py --help -->"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"  # argparse lays its help out differently in 3.13
HELP_COLUMNS = "100"
COMMAND_BLOCKS = ("", "sh", "bash", "shell", "console")  # fenced blocks of other kinds (text) are not commands
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm")
SMALL = {"--width": ["40"], "--height": ["32"]}
TILE = "32"  # the smallest tile --tile takes: two of them across a 40x32 image, overlapping
TILED_BY_ITSELF = 3_000_000  # pixels: a documented size this large is tiled by the tool, so tiled here too


def read(doc):
    with open(os.path.join(PROJECT, doc), encoding="utf-8") as file:
        return file.read()


# --- Markdown ------------------------------------------------------------------------------------------------

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")


def split_blocks(text):
    """(prose lines as (number, line), code blocks as (number of the opening fence, info, lines))."""
    prose, blocks, block = [], [], None
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        if block is None and fence:
            block = (number, fence.group(3).lower(), [], fence.group(1), fence.group(2))
        elif block is not None and line.strip().startswith(block[4]) and not line.strip().strip(block[4][0]):
            blocks.append(block[:3])
            block = None
        elif block is not None:
            block[2].append(line[len(block[3]):] if line.startswith(block[3]) else line.lstrip())
        else:
            prose.append((number, line))
    return prose, blocks


def slug(heading):
    """GitHub's anchor of a heading: its text (links as their text, no code marks), lower case, punctuation but
    hyphens and underscores dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(doc):
    found, seen = set(), {}
    for _, line in split_blocks(read(doc))[0]:
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(doc):
    """(line number, target) of every inline link and image outside code."""
    found = []
    for number, line in split_blocks(read(doc))[0]:
        line = re.sub(r"`[^`]*`", "", line)  # code spans hold no links
        found += [(number, target) for target in re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)",
                                                            line)]
    return found


def broken_links(doc):
    problems = []
    for number, target in links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not checked here
            continue
        path, _, fragment = target.partition("#")
        linked = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
        where = f"{doc}:{number}: {target}"
        if linked.startswith(".."):
            problems.append(f"{where} leads out of the project")
        elif not os.path.exists(os.path.join(PROJECT, linked)):
            problems.append(f"{where}: {linked} does not exist")
        elif fragment and not linked.endswith(".md"):
            problems.append(f"{where}: an anchor into a file that is not a page")
        elif fragment and fragment not in anchors(linked):
            problems.append(f"{where}: {linked} has no heading whose anchor is #{fragment}")
    return problems


# --- the commands in the code blocks ---------------------------------------------------------------------------

def commands_of(lines):
    """[(line offset, argv)] of a block's lines: continuation lines joined, comments dropped, `&&` chains split."""
    found, pending, start = [], "", 0
    for offset, line in enumerate(lines, start=1):
        if not pending:
            start = offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        words = shlex.split(pending + line, comments=True)
        pending = ""
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            if words[:cut]:
                found.append((start, words[:cut]))
            words = words[cut + 1:]
    return found


def command_blocks():
    """(doc, line of the fence, [(line, argv)]) of every command block in the docs."""
    found = []
    for doc in DOCS:
        for number, info, lines in split_blocks(read(doc))[1]:
            if info in COMMAND_BLOCKS:
                commands = [(number + offset, argv) for offset, argv in commands_of(lines)]
                if commands:
                    found.append((doc, number, commands))
    return found


def kind_of(argv):
    """What a command is, as the tests check it: (kind, the rest of its words)."""
    head = argv[:2]
    if head[0] in ("python", "python3") and len(argv) > 1:
        if argv[1] == "style_transfer.py":
            return "style_transfer", argv[2:]
        if argv[1] == "-m" and len(argv) > 2:
            if argv[2].startswith("runner."):
                return "runner", argv[2:]
            if argv[2] in ("pytest", "venv"):
                return argv[2], argv[3:]
        if argv[1].startswith("bench/") and argv[1].endswith(".py"):
            return "bench", argv[1:]
        if argv[1] == "tests/test_docs.py":
            return "this", argv[2:]
    if head[0] in (".", "source") or head[0] == "export" or head[0] == "ruff":
        return "shell", argv[1:]
    if head[0] in ("pip", "tensorboard", "sbatch", "kubectl"):
        return head[0], argv[1:]
    if head[0].startswith("examples/"):
        return "example", argv
    return "unknown", argv


def options_given(words):
    """[(option, [values])] of a command's words, in order ("--a=b" as ("--a", ["b"])); words before the first
    option as (None, words)."""
    found = [(None, [])]
    for word in words:
        if word.startswith("--"):
            name, equals, value = word.partition("=")
            found.append((name, [value] if equals else []))
        else:
            found[-1][1].append(word)
    return found if found[0][1] else found[1:]


@functools.lru_cache(maxsize=None)
def help_of(script):
    """A bench/ script's --help, from a process of its own."""
    done = subprocess.run([sys.executable, script, "--help"], cwd=PROJECT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{script} --help: {done.stderr.strip()[-500:]}"
    return done.stdout


def help_of_module(name):
    """The exit code of `python -m <name> --help`, run in this process."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        try:
            return importlib.import_module(name).main(["--help"])
        except SystemExit as exit_:
            return exit_.code or 0


def check_statically(kind, words, help_text):
    """What can be checked without running: the command is known, the files it names exist, its options exist.
    A list of problems."""
    problems = []
    if kind == "unknown":
        problems.append("a command tests/test_docs.py does not know how to check: teach it (kind_of)")
    elif kind == "style_transfer":
        problems += [f"no option {name} in style_transfer.py --help" for name, _ in options_given(words)
                     if name and not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", help_text)]
    elif kind == "runner":
        if not os.path.isfile(os.path.join(PROJECT, *words[0].split(".")) + ".py"):
            problems.append(f"no module {words[0]}")
        elif help_of_module(words[0]) != 0:
            problems.append(f"python -m {words[0]} --help does not exit 0")
    elif kind == "bench":
        if not os.path.isfile(os.path.join(PROJECT, words[0])):
            problems.append(f"no script {words[0]}")
    elif kind == "pytest":
        problems += [f"no test file {word}" for word in words
                     if word.endswith(".py") and not os.path.isfile(os.path.join(PROJECT, word))]
    elif kind == "pip":
        problems += [f"no requirements file {word}" for option, word in zip(words, words[1:])
                     if option == "-r" and not os.path.isfile(os.path.join(PROJECT, word))]
    elif kind == "tensorboard":
        if importlib.util.find_spec("tensorboard") is None:
            problems.append("tensorboard is not installed with the requirements")
    elif kind == "sbatch":
        script = next((word for word in words if not word.startswith("-")), None)
        if not script or not os.path.isfile(os.path.join(PROJECT, script)):
            problems.append(f"no job script {script}")
        else:  # the options after the script's name go to style_transfer.py
            problems += check_statically("style_transfer", words[words.index(script) + 1:], help_text)
    elif kind == "kubectl":
        problems += [f"no manifest {word}" for option, word in zip(words, words[1:])
                     if option == "-f" and not os.path.isfile(os.path.join(PROJECT, word))]
    elif kind == "example":
        if not os.access(os.path.join(PROJECT, words[0]), os.X_OK):
            problems.append(f"{words[0]} is not an executable file")
    return problems


# --- inputs made where a command names them ----------------------------------------------------------------------

def smooth_image(width, height, seed):
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (height // 4 + 1, width // 4 + 1, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))


def panning_frames(count=3, width=40, height=32, step=2):
    """A camera panning over a smooth scene, `step` pixels a frame."""
    scene = smooth_image(width + 8 + step * count, height + 8, seed=7)
    return [scene[4:4 + height, 4 + step * index:4 + step * index + width] for index in range(count)]


def write_clip(path, frames, fps=12):
    """An H.264 clip, with the ffmpeg of the imageio-ffmpeg wheel (as tests/test_video.py's clips are read)."""
    import imageio_ffmpeg

    height, width = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(path, (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame, np.uint8))
    writer.close()


def make_folder_of_images(folder, count=4):
    os.makedirs(folder, exist_ok=True)
    for index in range(count):
        write_image(os.path.join(folder, f"photo{index + 1}.jpg"), 80, 60, seed=30 + index)


def make_content(given, film):
    """Make what a command's --content names, where it names it, unless it is there already."""
    if os.path.exists(given) or (glob.has_magic(given) and glob.glob(given)):
        return
    directory = os.path.dirname(given.rstrip("/"))
    if directory:
        os.makedirs(directory, exist_ok=True)
    if glob.has_magic(given):
        assert given.endswith("-*.tfrecord"), f"--content {given}: only PREFIX-*.tfrecord patterns are made here"
        from runner import tfrecords

        make_folder_of_images("packed-images")
        assert tfrecords.main(["packed-images", given[:-len("-*.tfrecord")], "--shards", "2"]) == 0
    elif given.lower().endswith(VIDEO_EXTENSIONS):
        write_clip(given, panning_frames())
    elif given.endswith("/") or not os.path.splitext(given)[1]:
        if film:
            os.makedirs(given, exist_ok=True)
            for number, frame in enumerate(panning_frames(), start=1):
                Image.fromarray(frame).save(os.path.join(given, f"frame{number}.png"))
        else:
            make_folder_of_images(given)
    elif given.endswith(".txt"):
        make_folder_of_images(os.path.join(directory, "listed"), 2)
        with open(given, "w") as listing:
            listing.write("listed/photo1.jpg\nlisted/photo2.jpg\n")
    else:
        write_image(given, 80, 60, seed=2)


def make_style(given, seed):
    if not os.path.exists(given):
        if os.path.dirname(given):
            os.makedirs(os.path.dirname(given), exist_ok=True)
        write_image(given, 64, 64, seed=seed)


def make_mask(given, levels):
    """A mask of `levels` vertical bands of grey (a --content-mask's regions, a --style-mask's white and black)."""
    if not os.path.exists(given):
        if os.path.dirname(given):
            os.makedirs(os.path.dirname(given), exist_ok=True)
        bands = np.linspace(0, 255, levels).astype(np.uint8)[np.arange(80) * levels // 80]
        Image.fromarray(np.broadcast_to(bands, (60, 80)).copy()).save(given)


def small_version(words, vgg):
    """A style_transfer.py command's options made small (and its inputs made): the argv to run, and what the run
    must leave (its --output, --output-dir, --output-tfrecord, and whether it is a film)."""
    given = dict(options_given(words))
    assert None not in given, f"words before the first option: {given.get(None)}"
    assert len(given) == len(options_given(words)), "an option given twice"
    for name in ("--checkpoint-dir", "--log-dir", "--output-dir", "--output", "--output-tfrecord"):
        assert not any(os.path.isabs(path) for path in given.get(name, [])), f"{name}: use a relative path"
    film = "--video" in given or any(path.lower().endswith(VIDEO_EXTENSIONS) for path in given.get("--content", []))
    if "--texture" not in given:
        for path in given.get("--content", ["content/deadpool.jpg"]):
            make_content(path, film)
    styles = given.get("--style", ["styles/guernica.jpg"])
    for seed, path in enumerate(styles, start=3):
        if path != "none":  # a region without style
            make_style(path, seed)
    for path in given.get("--content-mask", []):
        make_mask(path, len(styles))
    for path in given.get("--style-mask", []):
        if path != "all":
            make_mask(path, 2)

    scales = len(given["--scales"]) if "--scales" in given else 4 if "--fast" in given else 1
    width, height = (int(given.get(name, [default])[0]) for name, default in (("--width", 333), ("--height", 250)))
    tiled = "--tile" in given or width * height >= TILED_BY_ITSELF
    small = {**given, **SMALL, "--vgg": [vgg]}
    if scales > 1:
        small["--scale-steps"] = ["1"]
    small["--iterations"] = [str(scales - 1 + (4 if tiled and scales == 1 else 2))]
    if tiled:
        small["--tile"] = [TILE]
        if "--tile-overlap" in given:
            small["--tile-overlap"] = ["8"]
    if film:
        small["--frame-steps"] = ["1"]
        if "--frames" in given:
            small["--frames"] = ["2:3"]
    argv = [word for name, values in small.items() for word in (name, *values)]
    output_dir = given.get("--output-dir", ["outputs"])[0]
    output = given.get("--output", [os.path.join(output_dir, "final.png")])[0]
    if film:
        output = os.path.splitext(output)[0] + ".mp4"
    return argv, {"output": output, "output_dir": output_dir,
                  "output_tfrecord": given.get("--output-tfrecord", [None])[0], "tiled": tiled}


def check_outputs(expected):
    """A data set's manifests name only done items whose outputs exist; a single image's output exists."""
    manifests = glob.glob(os.path.join(expected["output_dir"], "manifest-*.jsonl"))
    if manifests:
        entries = [json.loads(line) for path in manifests for line in open(path) if line.strip()]
        assert entries and all(entry["status"] == "done" for entry in entries), entries
        missing = [entry["output"] for entry in entries  # relative to --output-dir, or (earlier) to the run's folder
                   if not any(os.path.isfile(path) for path in (os.path.join(expected["output_dir"], entry["output"]),
                                                                entry["output"]))]
        assert not missing, f"outputs the manifest names are missing: {missing}"
        if expected["output_tfrecord"]:
            assert glob.glob(expected["output_tfrecord"] + "-*.tfrecord"), "no --output-tfrecord file"
    else:
        assert os.path.isfile(expected["output"]), f"no final output {expected['output']}"


def run_command(kind, words, vgg, capsys):
    """Run one command of a block in the current folder, small; assert that it did what it says."""
    if kind == "style_transfer":
        if "--help" in words or "-h" in words:
            assert run_main(["--help"], capsys)[0] == 0
            return
        argv, expected = small_version(words, vgg)
        code, out, err = run_main(argv, capsys)
        assert code == 0, f"style_transfer.py {shlex.join(argv)}\nexit {code}: {err.strip()[-1500:]}"
        check_outputs(expected)
        if expected["tiled"]:  # tiled at 40x32 too, as the documented size is
            assert re.search(r"^Tile 2/", out, re.MULTILINE), f"style_transfer.py {shlex.join(argv)}: no tiles\n{out}"
    elif kind == "runner":
        module = importlib.import_module(words[0])
        arguments = [word for word in words[1:] if not word.startswith("-")]
        if words[0] == "runner.tfrecords" and arguments and not os.path.exists(arguments[0]):
            make_folder_of_images(arguments[0])
        code = module.main(words[1:])
        assert code == 0, f"python -m {shlex.join(words)}: exit {code}: {capsys.readouterr().err}"
    elif kind == "bench":
        text = help_of(words[0])
        unknown = [name for name, _ in options_given(words[1:]) if name and name not in text]
        assert not unknown, f"{words[0]} --help has no {unknown}"


# --- the tests -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("doc", DOCS)
def test_links_lead_to_files_and_headings(doc):
    problems = broken_links(doc)
    assert not problems, "\n".join(problems)


def current_help():
    """`python style_transfer.py --help` at HELP_COLUMNS columns, as the page shows it."""
    import style_transfer

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            try:
                style_transfer.main(["--help"])
            except SystemExit as exit_:
                assert exit_.code in (0, None), exit_.code
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return printed.getvalue()


def generated_part(page):
    """(text before it, the Python version that printed it, text after it) of the options page."""
    found = re.search(re.escape(HELP_BEGIN).replace(re.escape("{version}"), r"([\d.]+)") + r"\n.*?"
                      + re.escape(HELP_END), page, re.DOTALL)
    assert found, f"docs/options.md lost its markers {HELP_BEGIN} ... {HELP_END}"
    return page[:found.start()], found.group(1), page[found.end():]


def options_page(help_text, page):
    """The options page with its generated part made from help_text (printed by this Python)."""
    before, _, after = generated_part(page)
    return f"{before}{HELP_BEGIN.format(version=PYTHON)}\n```text\n{help_text.rstrip()}\n```\n{HELP_END}{after}"


def test_options_page_is_the_current_help():
    page = read("docs/options.md")
    if generated_part(page)[1] != PYTHON:
        pytest.skip(f"docs/options.md holds --help as Python {generated_part(page)[1]} prints it, not {PYTHON}")
    assert page == options_page(current_help(), page), \
        "docs/options.md differs from `python style_transfer.py --help`: run python tests/test_docs.py --write"


def table_rows(doc, heading):
    """The table lines of one section of a page."""
    lines, inside = [], False
    for _, line in split_blocks(read(doc))[0]:
        if line.startswith("#"):
            inside = line.lstrip("#").strip() == heading
        elif inside and line.startswith("|"):
            lines.append(line)
    assert lines, f"{doc} has no table under {heading!r}"
    return lines


@pytest.mark.parametrize("doc, heading", [("README.md", "The options most people need"),
                                          ("docs/options.md", "More on some options")])
def test_the_options_the_tables_name_exist(doc, heading):
    help_text = current_help()
    named = {name for line in table_rows(doc, heading) for name in re.findall(r"`(--[a-z][a-z0-9-]*)", line)}
    assert named
    missing = sorted(name for name in named if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", help_text))
    assert not missing, f"{doc} names options style_transfer.py no longer has: {missing}"


def test_the_tests_the_guarantees_name_exist():
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", read("docs/guarantees.md"))
    assert len(named) >= 10
    missing = []
    for file, test in named:
        path = os.path.join(PROJECT, "tests", file)
        if not os.path.isfile(path) or not re.search(rf"^def {test}\(", open(path).read(), re.MULTILINE):
            missing.append(f"{file}::{test}")
    assert not missing, f"docs/guarantees.md names tests that do not exist: {missing}"


@pytest.mark.parametrize("doc", [doc for doc in DOCS if doc.startswith("docs")])
def test_each_page_starts_with_a_command(doc):
    prose, blocks = split_blocks(read(doc))
    sections = [number for number, line in prose if line.startswith("## ")]
    commands = [number for number, info, lines in blocks if info in COMMAND_BLOCKS and commands_of(lines)]
    assert commands and (not sections or commands[0] < sections[0]), f"{doc}: no command before its first section"


BLOCKS = command_blocks()
BLOCK_IDS = [f"{doc}:{line}" for doc, line, _ in BLOCKS]


@pytest.mark.parametrize("doc, line, commands", BLOCKS, ids=BLOCK_IDS)
def test_the_commands_are_known_and_name_what_exists(doc, line, commands):
    help_text = current_help()
    problems = [f"{doc}:{number}: {shlex.join(argv)}: {problem}" for number, argv in commands
                for problem in check_statically(*kind_of(argv), help_text)]
    assert not problems, "\n".join(problems)


RUNS = ("style_transfer", "runner", "bench")


def quick(doc, commands):
    """The README's first run (the CS20 defaults, at 40x32) is in the quick subset; the other runs are slow."""
    return doc == "README.md" and [kind_of(argv)[1] for _, argv in commands if kind_of(argv)[0] in RUNS] == [[]]


@pytest.mark.parametrize("doc, line, commands", [
    pytest.param(doc, line, commands, id=f"{doc}:{line}", marks=[] if quick(doc, commands) else pytest.mark.slow)
    for doc, line, commands in BLOCKS if any(kind_of(argv)[0] in RUNS for _, argv in commands)])
def test_the_commands_of_the_docs_run(doc, line, commands, tmp_path, monkeypatch, capsys, vgg19_mat):
    monkeypatch.chdir(tmp_path)
    for number, argv in commands:
        kind, words = kind_of(argv)
        try:
            run_command(kind, words, vgg19_mat[0], capsys)
        except AssertionError as error:
            raise AssertionError(f"{doc}:{number}: {shlex.join(argv)}\n{error}") from None


def write_options_page():
    page = read("docs/options.md")
    written = options_page(current_help(), page)
    if written != page:
        with open(OPTIONS_PAGE, "w", encoding="utf-8") as file:
            file.write(written)
    print(f"docs/options.md {'written' if written != page else 'already matches --help'}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_docs.py --write   (writes docs/options.md from --help)")
    write_options_page()
