"""What the DNS cmdlets share: the CIM type prefix of their objects, the
-PassThru and -ComputerName parameters, and -Force."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from casarray.shell.cmdlet import Cmdlet, Parameter

CIM = "Microsoft.Management.Infrastructure.CimInstance#root/Microsoft/Windows/DNS/"

PASS_THRU = Parameter("PassThru", kind="switch", help="Write the record (or zone) added.")
COMPUTER = Parameter("ComputerName", help="Accepted; the DNS server is the directory's.")


def forced(cmdlet: Cmdlet, params: Mapping[str, Any], target: str) -> bool:
    """-Force skips the confirmation (not -WhatIf)."""
    common = cmdlet.invocation.common if cmdlet.invocation is not None else {}
    if params.get("Force") and not common.get("WhatIf"):
        return True
    return cmdlet.should_process(target)
