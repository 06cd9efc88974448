"""Writes Keras' legacy HDF5 weights layout of VGG-19 notop for the tests: the file's attribute `layer_names`
lists the layers; a group per layer (block1_conv1, ..., block5_pool); each group's attribute `weight_names`
lists its datasets, kernel (3, 3, in, out) first, then bias (out,). Keras' weights expect BGR input."""

import h5py

import matconvnet


def write_keras_vgg_h5(path, rgb_weights, blocks=matconvnet.VGG19_BLOCKS):
    """Write `rgb_weights` ({MatConvNet conv name: (kernel, bias)} for RGB input) as Keras would hold them."""
    with h5py.File(path, "w") as file:
        layer_names = ["input_1"]
        for block, count in enumerate(blocks, start=1):
            for index in range(1, count + 1):
                kernel, bias = rgb_weights[f"conv{block}_{index}"]
                if (block, index) == (1, 1):
                    kernel = kernel[:, :, ::-1, :]  # Keras' first layer reads BGR
                name = f"block{block}_conv{index}"
                group = file.create_group(name)
                group.create_dataset(f"{name}_W_1:0", data=kernel)
                group.create_dataset(f"{name}_b_1:0", data=bias)
                group.attrs["weight_names"] = [f"{name}_W_1:0".encode(), f"{name}_b_1:0".encode()]
                layer_names.append(name)
            file.create_group(f"block{block}_pool").attrs["weight_names"] = []
            layer_names.append(f"block{block}_pool")
        file.create_group("input_1").attrs["weight_names"] = []
        file.attrs["layer_names"] = [name.encode() for name in layer_names]
