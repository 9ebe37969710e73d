"""Comparing arrays bit for bit."""

import numpy as np


def same_bits(got, want, what: str) -> None:
    """`got` has `want`'s dtype, shape and bits; NaN where `want` has NaN (a NaN's sign and
    payload are not compared)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, what
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), what
    assert got[~nan].tobytes() == want[~nan].tobytes(), (what, got, want)
