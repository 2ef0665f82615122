import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import DEAD_RELU, HEALTHY, write_target  # noqa: E402


@pytest.fixture
def healthy_target(tmp_path: Path) -> Path:
    return write_target(tmp_path, HEALTHY)


@pytest.fixture
def dead_relu_target(tmp_path: Path) -> Path:
    return write_target(tmp_path, DEAD_RELU)
