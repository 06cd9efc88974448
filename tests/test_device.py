"""The device choices, tested on the CPU (no GPU is needed): the Session configuration per device, and the memory
guard reading the GPU's free memory where the run is on a GPU."""

import os
import stat

import numpy as np
import pytest

from runner import memory, tf_setup
from utils import FixableError

DEEPEST = "relu5_1"  # the deepest layer of the CS20 losses (conv4_2, conv1_1 ... conv5_1)


def test_the_cpu_runs_the_chosen_rewrites_only_and_one_op_at_a_time():
    config = tf_setup.session_config(on_gpu=False)
    rewrite = config.graph_options.rewrite_options
    assert config.inter_op_parallelism_threads == 1
    assert rewrite.layout_optimizer == rewrite.OFF and rewrite.arithmetic_optimization == rewrite.OFF
    assert rewrite.remapping != rewrite.OFF and rewrite.dependency_optimization != rewrite.OFF
    assert rewrite.meta_optimizer_iterations == rewrite.ONE
    assert not config.gpu_options.allow_growth


def test_a_gpu_keeps_tensorflows_rewrites_and_takes_memory_as_needed():
    config = tf_setup.session_config(on_gpu=True)
    rewrite = config.graph_options.rewrite_options
    assert rewrite.layout_optimizer != rewrite.OFF and rewrite.arithmetic_optimization != rewrite.OFF
    assert not rewrite.disable_meta_optimizer and config.gpu_options.allow_growth


def ops_run(config):
    """The op types TensorFlow runs, after its graph optimiser, for a convolution + bias + ReLU (VGG's layer)."""
    tf = tf_setup.tf
    graph = tf.Graph()
    with graph.as_default():
        image = tf.placeholder(tf.float32, (1, 16, 16, 3))
        kernel, bias = tf.constant(np.ones((3, 3, 3, 8), np.float32)), tf.constant(np.ones(8, np.float32))
        layer = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(image, kernel, strides=1, padding="SAME"), bias))
        metadata = tf.RunMetadata()
        with tf.Session(graph=graph, config=config) as sess:
            sess.run(layer, {image: np.zeros((1, 16, 16, 3), np.float32)},
                     options=tf.RunOptions(output_partition_graphs=True), run_metadata=metadata)
    return {node.op for partition in metadata.partition_graphs for node in partition.node}


def test_on_the_cpu_each_convolution_runs_fused_with_its_bias_and_relu():
    """What the CPU configuration is for (0.65 against 1.0 s/step at 333x250): the remapper's fused kernel. Turning
    the remapper off, as a configuration could, leaves the three ops apart."""
    fused = ops_run(tf_setup.session_config(on_gpu=False))
    assert any("FusedConv2D" in op for op in fused) and "Relu" not in fused, fused
    without = tf_setup.session_config(on_gpu=False)
    without.graph_options.rewrite_options.remapping = without.graph_options.rewrite_options.OFF
    assert "Relu" in ops_run(without)


def fake_nvidia_smi(folder, monkeypatch, output, code=0):
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{output}'\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def test_gpu_free_memory_is_read_from_nvidia_smi(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, monkeypatch, "81234\\n")
    assert tf_setup.gpu_free_memory() == 81234 * 2**20
    fake_nvidia_smi(tmp_path, monkeypatch, "", code=9)
    assert tf_setup.gpu_free_memory() is None


def test_on_a_gpu_the_memory_guard_weighs_the_gpus_memory_not_the_hosts(tmp_path, monkeypatch):
    monkeypatch.setattr(tf_setup, "ON_GPU", True)
    fake_nvidia_smi(tmp_path, monkeypatch, "3000\\n")  # 3 GB free on the GPU, whatever the host has
    memory.check_memory(333, 250, DEEPEST)
    with pytest.raises(FixableError, match=r"GB of GPU memory and 3\.1 GB is available: at most about \d+x\d+ fits"):
        memory.check_memory(2048, 1536, DEEPEST)
    monkeypatch.setattr(tf_setup, "ON_GPU", False)
    monkeypatch.setattr(memory.utils, "available_memory", lambda: 24e9)
    memory.check_memory(2048, 1536, DEEPEST)  # the host's 24 GB hold it
