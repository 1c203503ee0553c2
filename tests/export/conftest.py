import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "quant"))  # quantnets


@pytest.fixture(autouse=True)
def _quiet_pytorch_quantization():
    logging.getLogger("absl").setLevel(logging.ERROR)
    yield
