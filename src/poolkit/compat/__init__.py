"""Framework dialects: PyTorch, TensorFlow, Keras and ONNX pooling, exactly, on NumPy arrays.

People port models between frameworks and trip on pooling: TensorFlow's ``"SAME"`` pads
asymmetrically, PyTorch pads symmetrically and limits padding to half the kernel, and ceil mode,
``count_include_pad``, index encodings and Lp pooling all differ.  Each submodule speaks one
framework's dialect as a thin translation onto the poolkit core; every quirk lives here, never in
the core.  None of them imports its framework: NumPy in, NumPy out.

* :mod:`poolkit.compat.torch` -- ``torch.nn.functional``: ``max_pool2d``, ``avg_pool2d``,
  ``lp_pool2d``, ``adaptive_max_pool2d``, ``max_unpool2d``, ``fractional_max_pool2d``, ...
* :mod:`poolkit.compat.tf` -- ``tf.nn``: ``max_pool``, ``avg_pool``, ``pool``,
  ``max_pool_with_argmax``, ...
* :mod:`poolkit.compat.keras` -- Keras 3 layers: ``MaxPooling2D``, ``GlobalAveragePooling1D``,
  ``AdaptiveMaxPooling2D``, ... each with ``backward(grad_output)``.
* :mod:`poolkit.compat.onnx` -- ``run(op_type, inputs, **attributes)`` for the ONNX pooling operators.

Examples
--------
The same 3x3, stride-2 max pooling layer in four dialects, on a 7x7 map (NCHW for PyTorch and ONNX,
NHWC for TensorFlow and Keras):

>>> import numpy as np
>>> import poolkit
>>> from poolkit.compat import keras, onnx, tf, torch
>>> x = np.random.default_rng(0).random((1, 3, 7, 7), dtype=np.float32)
>>> a = torch.max_pool2d(x, 3, stride=2, padding=1)
>>> b = onnx.run("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])[0]
>>> c = tf.max_pool2d(x.transpose(0, 2, 3, 1), 3, 2, "SAME").transpose(0, 3, 1, 2)
>>> d = keras.MaxPooling2D(3, 2, padding="same", data_format="channels_first")(x)
>>> all(np.array_equal(a, v) for v in (b, c, d))
True

That works because SAME pads a 7-wide axis by one cell on each side.  On an even size it pads
asymmetrically, the odd cell at the end, which no PyTorch ``padding=`` reproduces:

>>> poolkit.resolve_padding((1, 3, 7, 7), (3, 3), 2, "same")
((1, 1), (1, 1))
>>> poolkit.resolve_padding((1, 3, 6, 6), (3, 3), 2, "same")
((0, 1), (0, 1))
"""

from . import keras, onnx, tf, torch

__all__ = ["torch", "tf", "keras", "onnx"]
