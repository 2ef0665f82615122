import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import pytest

from nnfuzz.execution import Executor

if TYPE_CHECKING:
    from nnfuzz.drivers.in_process import InProcess

sys.path.insert(0, str(Path(__file__).resolve().parent))

from targets import DEAD_RELU, HEALTHY, write_target  # noqa: E402


@pytest.fixture(autouse=True)
def same_random_state_in_any_order() -> None:
    """Every test starts torch's global random stream from the same state, whichever tests
    ran before it (the suite passes in any order: pytest --random-order)."""
    import torch

    torch.manual_seed(0)


@pytest.fixture
def healthy_target(tmp_path: Path) -> Path:
    return write_target(tmp_path, HEALTHY)


@pytest.fixture
def dead_relu_target(tmp_path: Path) -> Path:
    return write_target(tmp_path, DEAD_RELU)


@pytest.fixture
def executor_for() -> Iterator[Callable[..., Executor]]:
    """Builds executors (``executor_for(model, **options)``) that are closed when the test
    ends, so that no test leaves a process-wide hook behind for the next."""
    with contextlib.ExitStack() as opened:
        yield lambda model, **options: opened.enter_context(Executor(model, **options))


@pytest.fixture
def in_process() -> Iterator[Callable[..., "InProcess"]]:
    """Builds in-process drivers (``in_process(target, config, **options)``) that are closed
    when the test ends: their engine's hook goes, and their output folder's lock."""
    from nnfuzz.drivers.in_process import InProcess

    with contextlib.ExitStack() as opened:
        yield lambda *args, **options: opened.enter_context(InProcess(*args, **options))

