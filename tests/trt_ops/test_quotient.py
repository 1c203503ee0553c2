"""triton_util.quotient: t // n through an fp32 reciprocal, exact below QUOTIENT_MAX, and the launches that use it.

The kernels that split an index by run-time counts (grid sampler boxes, rotate's pixel rows and staged boxes, MSDA's
rows) pass 1 / n and take the float path only where float_quotients says every dividend is below the limit. The
jitted helper itself runs in the interpreter in test_kernels_interpret.py (test_quotient_in_a_kernel).
"""

import numpy as np

# divisors the kernels meet (boxes per row, BEV widths, heads, queries, heads x queries) and awkward ones: primes,
# powers of two and their neighbours
DIVISORS = (1, 2, 3, 5, 7, 8, 13, 63, 64, 65, 127, 200, 255, 256, 257, 900, 1000, 2047, 2048, 2049, 2500, 4093, 4096,
            40000, 65537, 320000, 1 << 20, (1 << 22) - 1)


def test_float_quotient_is_exact_below_the_limit():
    """Emulated in fp32 as the kernel computes it ((t + 0.5) * fl(1 / n), truncated), the quotient equals t // n
    for every t below QUOTIENT_MAX and every divisor above."""
    from bevdeploy.plugins.trt_ops.triton_util import QUOTIENT_MAX

    t = np.arange(QUOTIENT_MAX, dtype=np.int64)
    tf = t.astype(np.float32) + np.float32(0.5)
    assert np.array_equal(tf.astype(np.float64), t + 0.5)  # t + 0.5 itself exact in fp32
    for n in DIVISORS:
        q = (tf * np.float32(1.0 / n)).astype(np.int64)
        assert np.array_equal(q, t // n), n


def test_float_quotient_limit_is_needed():
    """Not far past the limit the float quotient goes wrong (6291458 // 3: t + 0.5 is no longer exact in fp32), so
    launches with larger dividends must take the integer path."""
    t = 6291458
    assert int((np.float32(t) + np.float32(0.5)) * np.float32(1.0 / 3)) != t // 3


def test_launches_take_the_float_path_only_below_the_limit():
    from bevdeploy.plugins.trt_ops.triton_util import QUOTIENT_MAX, box_launch, float_quotients, reciprocal

    assert float_quotients(1) and float_quotients(QUOTIENT_MAX)
    assert not float_quotients(QUOTIENT_MAX + 1)
    assert reciprocal(7) == 1 / 7 and reciprocal(0) == 1.0
    assert box_launch(200, 200, 1, 32, 4, 1) == (7 * 50, 1 / 7, 1 / 50)
    assert box_launch(4096, 4096, 1, 2, 1, 1) is None  # 2048 x 4096 boxes: 2^23 programs, past the limit
