"""Post-training quantization engine on pytorch-quantization.

The pieces, in the order a quantize hook uses them: :func:`fold_bn` (BN into the preceding conv),
:func:`insert_quantizers` (fake-quant modules that keep module names and weights, dense and sparse),
:func:`calibrate` (histogram/max calibration through a ``forward_loop`` callback), the rules
(:func:`disable`, :func:`share_input_quantizer`) and the calibration table (amax per quantizer, JSON)
that lets a later run skip calibration. :func:`generic_quantize` chains them for any model.
"""

from .calibrate import calibrate
from .fold import fold_bn
from .generic import generic_quantize
from .modules import (
    disable,
    has_quantizers,
    insert_quantizers,
    named_quantizers,
    share_bottleneck_quantizers,
    share_input_quantizer,
    without_host_syncs,
)
from .table import calib_table, load_calib_table, save_calib_table

__all__ = [
    "calib_table",
    "calibrate",
    "disable",
    "fold_bn",
    "generic_quantize",
    "has_quantizers",
    "insert_quantizers",
    "load_calib_table",
    "named_quantizers",
    "save_calib_table",
    "share_bottleneck_quantizers",
    "share_input_quantizer",
    "without_host_syncs",
]
