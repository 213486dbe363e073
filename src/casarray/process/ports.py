"""Standard ports and the unprivileged fallback every listening role shares: a process
that may not bind ports below 1024 (no root, no CAP_NET_BIND_SERVICE) listens on each
standard port plus UNPRIVILEGED_OFFSET (10143, 10993, 10053, ...), and says so once."""

from __future__ import annotations

UNPRIVILEGED_OFFSET = 10_000
