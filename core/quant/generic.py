"""Generic post-training quantization for any model: the core's default quantize hook calls it."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from torch import nn

from ..errors import BevDeployError
from ..specs.run import QuantSpec
from .calibrate import calibrate
from .fold import fold_bn
from .modules import Skip, disable, insert_quantizers


def forward_over(calib_data: Iterable[dict[str, Any]], num_batches: int):
    """A ``forward_loop`` calling ``model(**inputs)`` on the first ``num_batches`` input dicts."""

    def loop(model: nn.Module) -> None:
        seen = 0
        for inputs in itertools.islice(calib_data, num_batches):
            model(**inputs)
            seen += 1
        if seen == 0:
            raise BevDeployError("calibration got no samples; check the calibration split")

    return loop


def generic_quantize(
    model: nn.Module, calib_data: Iterable[dict[str, Any]], qspec: QuantSpec, skip: Skip = None
) -> nn.Module:
    """Fold BN, insert quantizers on every Conv/Linear/sparse conv, calibrate, disable ``qspec.keep_fp``.

    ``calib_data`` yields model-input dicts; at most ``qspec.num_batches`` are used. The model is
    changed in place and returned in eval mode.
    """
    model.eval()
    fold_bn(model)
    insert_quantizers(model, qspec, skip=skip)
    calibrate(model, forward_over(calib_data, qspec.num_batches), qspec)
    disable(model, qspec.keep_fp)
    return model
