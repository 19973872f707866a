"""Helpers shared by the test files, each written once (``tests/conftest.py`` puts ``tests/`` on
``sys.path``, so a test file says ``from support import oracle``).

* ``oracle`` -- the slow, obvious NumPy oracle for the sliding-window ops (max, average and Lp
  pooling, their gradients, max_unpool, output_shape, resolve_padding).
* ``oracle_fixed`` -- the same for the fixed-length family (global, adaptive, spatial pyramid,
  masked, fractional, ROI pooling and ROI align).
* ``finite_differences`` -- central differences of ``sum(g * f(x))``, and the check that a backward
  function agrees with them.
* ``data`` -- inputs used by more than one test file: the worked-example matrices, random arrays with
  or without ties and NaN, values spaced apart, the ROI sets.
* ``cache_probe`` -- a script, not a module to import: ``test_compile_cache.py`` runs it in fresh
  processes sharing one numba cache.
"""
