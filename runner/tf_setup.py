"""TensorFlow, set up once for the whole tool: import this module before anything that imports TensorFlow.

Quiet logs, oneDNN's convolutions, TF1 graph mode, op determinism (the same steps give the same image, so a
resumed run ends where an uninterrupted one would, on a CPU or a GPU), the device, and the Session
configurations measurements chose for it.
"""

import os
import subprocess
import sys

import utils

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines (errors reach us as exceptions)
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # oneDNN convolutions: off by default on some CPUs, ~30% faster
try:
    with utils.quiet_stderr():  # ...and the GPU-probe lines it prints at import, before any log level applies
        import tensorflow as tf2
        import tensorflow.compat.v1 as tf
except KeyboardInterrupt:  # Ctrl-C in the seconds the import takes: one line, not a traceback from inside it
    print("style_transfer.py: interrupted while starting; nothing was written", file=sys.stderr)
    raise SystemExit(130) from None

tf.get_logger().setLevel("ERROR")  # the compat.v1 deprecation notices are not for our users
tf.disable_v2_behavior()
tf2.config.experimental.enable_op_determinism()

# The device: the same script runs on a GPU where TensorFlow sees one (see the README on installing for it).
ON_GPU = bool(tf2.config.list_physical_devices("GPU"))


def native_bfloat16(cpu_flags_file="/proc/cpuinfo"):
    """Whether this machine computes bfloat16 natively: a GPU of compute capability 8.0 or more (Ampere on), or a
    CPU with avx512_bf16 or amx_bf16 (oneDNN's bfloat16 convolutions; without them it emulates, many times slower)."""
    if ON_GPU:
        details = tf2.config.experimental.get_device_details(tf2.config.list_physical_devices("GPU")[0])
        return tuple(details.get("compute_capability") or (0, 0)) >= (8, 0)
    try:
        with open(cpu_flags_file) as file:
            flags = {word for line in file if line.startswith("flags") for word in line.split(":", 1)[1].split()}
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def session_config(on_gpu):
    """The training Session's configuration, chosen per device.

    CPU: one op at a time, each on every core (the convolutions are large enough to use them all; two at once
    only fight over the cores: 0.80 against 0.84 s/step at 333x250 on 2 cores). Of the graph optimiser only the
    passes that make steps faster run, once: each pass copies the graph, weight constants included (measured at
    333x250: the same s/step, about 200 MB less peak memory). The remapper fuses conv + bias + ReLU for oneDNN,
    and dependency optimisation lets it (without: 0.65 -> 1.0 s/step).
    GPU: TensorFlow's own rewrites, the layout optimiser among them (cuDNN prefers channels first), and memory
    taken as it is needed rather than all at once, so that a run's peak is its own and the GPU can be shared.
    """
    config = tf.ConfigProto()
    if on_gpu:
        config.gpu_options.allow_growth = True
        return config
    config.inter_op_parallelism_threads = 1
    rewrite = config.graph_options.rewrite_options
    rewrite.meta_optimizer_iterations = rewrite.ONE
    for name in ("arithmetic_optimization", "layout_optimizer", "loop_optimization", "shape_optimization",
                 "function_optimization", "debug_stripper"):
        setattr(rewrite, name, rewrite.OFF)
    rewrite.memory_optimization = rewrite.NO_MEM_OPT
    return config


def reason_of(error):
    """What a TensorFlow error says went wrong, on one line: its message without the "Graph execution error:"
    heading, the op stack TensorFlow appends ("Detected at node ...", "File ...") and the node's name."""
    message = str(getattr(error, "message", None) or getattr(error, "strerror", None) or error)
    lines = [line.strip() for line in message.splitlines()]
    if "Graph execution error:" in lines:  # the cause stands on the line before "[[{{node ...}}]]"
        node = next((index for index, line in enumerate(lines) if line.startswith("[[")), len(lines))
        lines = [line for line in lines[:node] if line][-1:] or lines
    return utils.one_line(next((line for line in lines if line), message))


def gpu_free_memory():
    """Bytes free on the first GPU, as nvidia-smi reports them, or None where it cannot say."""
    try:
        listed = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, timeout=30)
        return int(listed.stdout.split()[0]) * 2**20 if listed.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


SESSION_CONFIG = session_config(ON_GPU)
# A graph evaluated once (the targets): graph optimisation would cost more than it saves there.
ONE_RUN_CONFIG = tf.ConfigProto(inter_op_parallelism_threads=1)
ONE_RUN_CONFIG.graph_options.rewrite_options.disable_meta_optimizer = True
if ON_GPU:
    ONE_RUN_CONFIG.gpu_options.allow_growth = True
