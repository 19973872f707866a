"""The public namespace: what ``poolkit`` exports and documents.  (``test_fuzz.py`` checks that
every public function is fuzzed.)"""

from __future__ import annotations

import poolkit


def test_public_api():
    for name in ("global_max_pool", "adaptive_max_pool", "spatial_pyramid_pool", "masked_pool",
                 "fractional_max_pool", "roi_pool", "roi_align"):
        assert name in poolkit.__all__ and name + "_backward" in poolkit.__all__
        assert getattr(poolkit, name).__doc__ and ">>>" in getattr(poolkit, name).__doc__
