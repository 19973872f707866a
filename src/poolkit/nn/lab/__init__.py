"""``poolkit lab``: the claims made about pooling, measured on real data with :mod:`poolkit.nn`.

* :mod:`~poolkit.nn.lab.data` -- scikit-learn's bundled hand-written digits (no download), upscaled
  and padded to 20x20; a variable-length token task generated in code; image transforms.
* :mod:`~poolkit.nn.lab.models` -- the LeNet-style network with each pooling choice, and a 1-D
  text classifier with masked max pooling.
* :mod:`~poolkit.nn.lab.train` -- the training loop (Adam, mini-batches, progress lines).
* :mod:`~poolkit.nn.lab.claims` -- the experiments behind ``poolkit lab claims`` and their report.
* :mod:`~poolkit.nn.lab.cli` -- ``add_lab(subparsers)``, the ``lab`` subcommand.

scikit-learn (the ``lab`` extra) and matplotlib (the ``plot`` extra) are imported only when used.
"""
