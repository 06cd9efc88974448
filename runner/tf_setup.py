"""TensorFlow, set up once for the whole tool: import this module before anything that imports TensorFlow.

Quiet logs, oneDNN's convolutions, TF1 graph mode, op determinism (the same steps give the same image, so a
resumed run ends where an uninterrupted one would), and the Session configurations measurements chose.
"""

import os
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

# One op at a time, each on every core: the convolutions are large enough to use them all, and running two
# at once only makes them fight over the cores (measured: 0.80 against 0.84 s/step at 333x250 on 2 cores).
SESSION_CONFIG = tf.ConfigProto(inter_op_parallelism_threads=1)
# Graph optimisation: each pass copies the graph, weight constants included, so only the passes that make the
# steps faster run, once (measured at 333x250: the same s/step, about 200 MB less peak memory). The remapper
# fuses conv + bias + ReLU for oneDNN, and dependency optimisation lets it (without: 0.65 -> 1.0 s/step).
_rewrite = SESSION_CONFIG.graph_options.rewrite_options
_rewrite.meta_optimizer_iterations = _rewrite.ONE
for _pass in ("arithmetic_optimization", "layout_optimizer", "loop_optimization", "shape_optimization",
              "function_optimization", "debug_stripper"):
    setattr(_rewrite, _pass, _rewrite.OFF)
_rewrite.memory_optimization = _rewrite.NO_MEM_OPT

# A graph evaluated once (the targets): graph optimisation would cost more than it saves there.
ONE_RUN_CONFIG = tf.ConfigProto(inter_op_parallelism_threads=1)
ONE_RUN_CONFIG.graph_options.rewrite_options.disable_meta_optimizer = True
