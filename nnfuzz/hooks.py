"""The process-wide forward hooks of the open executors (nnfuzz.execution).

Each executor registers one global module hook (``register_module_forward_hook``)
while it is open. A plain pass must be the model as the user runs it, and a model
may look at ``_global_forward_hooks`` and compute otherwise when it is not empty:
so a plain pass takes out every nnfuzz hook, those of other executors too, and
registers them again after.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from torch.nn.modules.module import register_module_forward_hook
from torch.utils.hooks import RemovableHandle

#: The hook of every open executor, with its handle while it is registered (None while a
#: plain pass has it out): a plain pass takes out every nnfuzz hook, not only its own.
_INSTALLED: dict[Callable[..., None], RemovableHandle | None] = {}


def install(hook: Callable[..., None]) -> None:
    """Register an executor's hook for every module of the process, until :func:`uninstall`."""
    _INSTALLED[hook] = register_module_forward_hook(hook)


def uninstall(hook: Callable[..., None]) -> None:
    handle = _INSTALLED.pop(hook, None)
    if handle is not None:
        handle.remove()


@contextmanager
def suspended() -> Iterator[None]:
    """No nnfuzz hook is registered meanwhile; after, those of the executors still open are
    again (a nested suspension leaves that to the outer one)."""
    taken_out = [hook for hook, handle in _INSTALLED.items() if handle is not None]
    for hook in taken_out:
        _INSTALLED[hook].remove()  # type: ignore[union-attr]
        _INSTALLED[hook] = None
    try:
        yield
    finally:
        for hook in taken_out:
            if hook in _INSTALLED:  # not closed meanwhile
                install(hook)
