import logging

import pytest


@pytest.fixture(autouse=True)
def _quiet_pytorch_quantization():
    """pytorch-quantization logs through absl at WARNING for every quantizer; keep test output readable."""
    logging.getLogger("absl").setLevel(logging.ERROR)
    yield
