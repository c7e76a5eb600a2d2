"""Pickled messages between the parent and the method's worker, with the bytes each side moved."""
from __future__ import annotations

import io
import pickle
from multiprocessing.connection import Connection
from typing import Any

# the only globals the parent lets a worker's reply name: numpy arrays and scalars and the output types
RESTRICTED = {
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("benchmark.method", "SegmentationOutput"), ("benchmark.data.types", "SegmentInfo"),
}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in RESTRICTED:
            raise pickle.UnpicklingError(f"the method's worker sent {module}.{name}, which the parent does not accept")
        return super().find_class(module, name)


class Channel:
    """One end of the socket: `send` pickles, `recv` unpickles (restricted to RESTRICTED when `restricted`,
    the parent's side); `sent` / `received` count the bytes."""

    def __init__(self, connection: Connection, restricted: bool) -> None:
        self.connection = connection
        self.restricted = restricted
        self.sent = 0
        self.received = 0

    def send(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.connection.send_bytes(data)
        self.sent += len(data)

    def recv(self, timeout: float | None = None) -> Any:
        """The next message; TimeoutError when none comes within `timeout` seconds (None: wait for it)."""
        if timeout is not None and not self.connection.poll(timeout):
            raise TimeoutError
        data = self.connection.recv_bytes()
        self.received += len(data)
        return RestrictedUnpickler(io.BytesIO(data)).load() if self.restricted else pickle.loads(data)

    def close(self) -> None:
        self.connection.close()
