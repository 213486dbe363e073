"""Talking to a running lab: the control socket `$CASARRAY_HOME/run/lab.sock`.

The supervisor (`casarray lab up`) listens on a unix socket in the lab's run folder
(reachable by its user only: the folder's and the socket's mode), and answers one JSON
object per line with one JSON object per line:

    {"command": "kill", "name": "CAS02"}   -> {"ok": true, "message": "CAS02 killed ..."}
    {"command": "start", "name": "CAS02"}  -> {"ok": true, "message": "CAS02 started ..."}
    {"command": "kill-host", "name": "CAS02"} (start-host, partition, heal: a lab on
                                               several hosts) -> {"ok": true, "message": ...}
    {"command": "state"}                   -> {"ok": true, "state": {...}}
    {"command": "down"}                    -> {"ok": true, "message": "stopping"}
    anything else                          -> {"ok": false, "error": "..."}

`down` answers at once and the supervisor then stops every process; the client waits
for its pid to go. The supervisor's state is also in `run/lab-supervisor.json`
(`supervisor.read_state`), which `casarray lab status` reads without asking.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casarray.errors import CasarrayError

if TYPE_CHECKING:
    from casarray.lab.supervisor import LabSupervisor

HOST_COMMANDS = ("kill-host", "start-host", "partition", "heal")  # a lab on several hosts
SOCKET = "lab.sock"
MAX_LINE = 64 * 1024
SUN_PATH_MAX = 107  # the bytes of a unix socket's path (sun_path), less the NUL


class SupervisorError(CasarrayError):
    """A command the supervisor refuses (an unknown process name, say)."""


class LabNotRunning(CasarrayError):
    """No supervisor answers on the lab's control socket."""


class ControlError(CasarrayError):
    """The supervisor refused the command (its reason is the message)."""


def socket_path(home: Path) -> Path:
    return home / "run" / SOCKET


def _address(path: Path) -> str:
    """The path to bind or connect to; LabNotRunning naming the limit when it is too
    long for a unix socket (107 bytes)."""
    text = str(path)
    if len(os.fsencode(text)) <= SUN_PATH_MAX:
        return text
    raise LabNotRunning(
        f"The lab's folder path is too long for its control socket ({len(text)} bytes of "
        f"{SUN_PATH_MAX} at most for {path}); use a shorter --home."
    )


async def handle(supervisor: LabSupervisor, request: dict[str, Any]) -> dict[str, Any]:
    """One command's answer."""

    command = str(request.get("command", ""))
    name = request.get("name")
    try:
        if command == "state":
            return {"ok": True, "state": supervisor.snapshot()}
        if command == "down":
            supervisor.stopping.set()
            return {"ok": True, "message": "stopping", "pid": os.getpid()}
        if command in ("kill", "start"):
            if not isinstance(name, str) or not name.strip():
                return {"ok": False, "error": f"'{command}' needs the name of a process."}
            action = supervisor.kill if command == "kill" else supervisor.start_process
            message = action(name)
            supervisor.write_state()
            return {"ok": True, "message": message}
        if command in HOST_COMMANDS:
            if not isinstance(name, str) or not name.strip():
                return {"ok": False, "error": f"'{command}' needs the name of a host."}
            message = supervisor.host_action(command, name)
            supervisor.write_state()
            return {"ok": True, "message": message}
    except SupervisorError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": False, "error": f"Unknown command '{command}': use kill, start, state or down."}


async def serve(supervisor: LabSupervisor, home: Path) -> asyncio.AbstractServer:
    """Listen on the control socket (a stale one, of a supervisor that died, is
    replaced)."""
    path = socket_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("not a JSON object")
                except ValueError as exc:
                    answer: dict[str, Any] = {"ok": False, "error": f"Bad request: {exc}"}
                else:
                    answer = await handle(supervisor, request)
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    old = os.umask(0o077)
    try:
        server = await asyncio.start_unix_server(client, path=_address(path), limit=MAX_LINE)
    finally:
        os.umask(old)
    return server


def close(server: asyncio.AbstractServer, home: Path) -> None:
    server.close()
    with contextlib.suppress(FileNotFoundError):
        socket_path(home).unlink()


def request(home: Path, command: str, name: str | None = None, timeout: float = 10.0) -> dict:
    """Send one command to the lab's supervisor; its answer (ControlError when it
    refused, LabNotRunning when none answers)."""
    path = socket_path(home)
    message: dict[str, Any] = {"command": command}
    if name is not None:
        message["name"] = name
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(_address(path))
            sock.sendall(json.dumps(message).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(MAX_LINE)
                if not chunk:
                    break
                data += chunk
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise LabNotRunning(f"The lab in {home} isn't running.") from exc
    except OSError as exc:
        raise LabNotRunning(f"The lab in {home} doesn't answer on {path}: {exc}") from exc
    try:
        answer = json.loads(data)
    except ValueError as exc:
        raise LabNotRunning(f"The lab in {home} answered something unreadable.") from exc
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error", "refused")))
    return dict(answer)
