"""nftables scripts run in this process through libnftables (the library the `nft`
command is built on, Debian's libnftables1), falling back to `nft -f -` when the
library can't be loaded.

Why not only the command: NLB on the hosts refreshes its dead man's switch with every
heartbeat (ten times a second in the lab, on every member host), and starting `nft`
costs a few milliseconds of CPU each time; the library call costs a fraction of one.
Debian's python3-nftables is a ctypes wrapper of the same library, but it is not on
PyPI and the package needs only these five functions, so they are declared here.

A `Nftables` runs in the network namespace of the process that uses it (the netlink
socket is opened in the caller's namespace); it is not thread-safe.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import subprocess

from casarray.balancer.nft import NftError

__all__ = ["Nftables"]

_LIBRARY = "libnftables.so.1"


class Nftables:
    """Runs nftables scripts; `run(script)` raises NftError with nft's message."""

    def __init__(self, *, nft: str = "nft", library: str | None = _LIBRARY) -> None:
        self._nft = nft
        self._lib: ctypes.CDLL | None = None
        self._ctx: ctypes.c_void_p | None = None
        if library is not None:
            self._load(library)

    @property
    def in_process(self) -> bool:
        """Whether scripts run through the library rather than the `nft` command."""
        return self._ctx is not None

    def run(self, script: str) -> None:
        if self._lib is not None and self._ctx is not None:
            code = self._lib.nft_run_cmd_from_buffer(self._ctx, script.encode())
            error = self._lib.nft_ctx_get_error_buffer(self._ctx)
            if code != 0:
                text = (error or b"").decode(errors="replace").strip()
                raise NftError(f"nftables refused the script: {text or f'error {code}'}")
            return
        binary = shutil.which(self._nft)
        if binary is None:
            raise NftError(f"{self._nft} not found: install the Debian package nftables")
        result = subprocess.run(
            [binary, "-f", "-"], input=script.encode(), capture_output=True, check=False
        )
        if result.returncode != 0:
            text = result.stderr.decode(errors="replace").strip()
            raise NftError(f"nft -f - failed: {text}")

    def close(self) -> None:
        if self._lib is not None and self._ctx is not None:
            self._lib.nft_ctx_free(self._ctx)
        self._ctx = None
        self._lib = None

    def _load(self, library: str) -> None:
        name = library
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            found = ctypes.util.find_library("nftables")
            if found is None:
                return
            try:
                lib = ctypes.CDLL(found)
            except OSError:
                return
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        ctx = lib.nft_ctx_new(0)  # NFT_CTX_DEFAULT
        if not ctx:
            return
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        self._lib = lib
        self._ctx = ctypes.c_void_p(ctx)

    def __del__(self) -> None:
        self.close()
