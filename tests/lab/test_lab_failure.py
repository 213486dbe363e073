"""`casarray lab up --detach` when the lab can't become healthy: it gives up after
`--timeout`, says what wasn't healthy with the end of the logs, and stops the lab."""

from __future__ import annotations

import os
import socket

from tests.lab import Lab, wait_for


def test_a_port_taken_fails_with_the_log_tail_and_stops_the_lab(lab_folder: Lab) -> None:
    lab = lab_folder
    offset = 0 if os.geteuid() == 0 else 10_000  # the ports the lab will take
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.77.1.12", 80 + offset))  # CAS02's HTTP port
        squatter.listen()
        # `up` gives up as soon as CAS02 has failed to start twice, long before this
        result = lab.run("up", "--detach", "--timeout", "120")
    assert result.returncode == 1, result.stdout
    out = result.stdout
    assert "The lab isn't healthy after" in out and "stopping it" in out
    assert "(CAS02 failed to start twice)" in out
    assert "  - CAS02 is Restarting (exited with status 1; again in" in out
    assert f"--- the end of {lab.home / 'logs' / 'CAS02.log'}" in out
    assert "CAS02: can't listen on 127.77.1.12: [Errno 98] Address already in use" in out
    assert wait_for(lambda: not lab.processes(), timeout=5), lab.processes()
    assert not list((lab.home / "run").glob("*.json"))
