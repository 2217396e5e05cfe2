"""Importing extension modules safely inside PyFlink's thread mode.

In thread mode an operator runs on a JVM thread that PEMJA attached to the interpreter without
registering it for ``PyGILState_Ensure``. A pybind11 extension (onnxruntime, scipy.fft's
pocketfft) calls that while it initialises and waits forever for the GIL its own thread holds:
seen as ``rank_shows`` stuck in ``import onnxruntime`` and ``detect_alarms`` stuck in
``import scipy.fft`` while its operator opened, neither ever emitting a record. A thread that
Python started is registered, so the import completes there; the module then works from any
thread.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType


def import_on_python_thread(name: str) -> ModuleType:
    """``importlib.import_module(name)``, the first time from a thread Python started; an
    import error is re-raised on the caller's thread."""
    if name not in sys.modules:
        failure: list[BaseException] = []

        def load() -> None:
            try:
                importlib.import_module(name)
            except BaseException as e:  # re-raised on the caller's thread
                failure.append(e)

        loader = threading.Thread(target=load, name=f"import-{name}")
        loader.start()
        loader.join()
        if failure:
            raise failure[0]
    return sys.modules[name]
