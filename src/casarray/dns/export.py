"""Export-DnsServerZone: a zone written as an RFC 1035 master file that BIND and NSD
load (`nsd-checkzone lab.net lab.net.dns`).

The file holds the inside view (every record), names relative to a `$ORIGIN` line,
the SOA first and the other names in DNS order, each record with its TTL and class.
Windows writes the file under %windir%\\System32\\dns; here FileName is a path, relative
to the current directory or absolute. An existing file is not overwritten.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dns.zone

from casarray.directory.errors import InvalidOperationError, InvalidValueError
from casarray.dns.zones import zone_from_contents

if TYPE_CHECKING:
    from casarray.directory import Directory


@dataclass(frozen=True)
class ExportedZone:
    zone_name: str
    file_name: str  # the absolute path written
    serial: int
    records: int


def zone_text(zone: dns.zone.Zone, serial: int) -> str:
    """The master file of `zone`: a comment naming it, `$ORIGIN`, then its records."""
    assert zone.origin is not None
    origin = zone.origin.to_text(omit_final_dot=True)
    header = (
        f"; Zone {origin}, serial {serial}, exported by casarray (Export-DnsServerZone)\n"
        "; from the directory: automatic records and those added by cmdlet.\n"
    )
    return header + zone.to_text(sorted=True, relativize=True, want_origin=True)


def export_zone(directory: Directory, name: str, file_name: str) -> ExportedZone:
    """Write zone `name` to `file_name` (relative to the current directory)."""
    if not str(file_name or "").strip():
        raise InvalidValueError("FileName", file_name, "is empty. Name the file to write.")
    path = Path(os.path.abspath(Path(str(file_name).strip()).expanduser()))
    if path.exists():
        raise InvalidOperationError(
            f"The file {path} already exists; remove it or choose another FileName.",
            target=str(path),
        )
    if not path.parent.is_dir():
        raise InvalidValueError(
            "FileName", file_name, f"is in a folder that doesn't exist ({path.parent})."
        )
    directory.dns.zone(name)  # an unknown zone: its error
    contents = directory.dns.contents()
    zone_contents = contents.zone(name)
    zone = zone_from_contents(zone_contents)
    text = zone_text(zone, contents.serial)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="ascii")
        os.link(temporary, path)  # fails, rather than overwrites, if it appeared meanwhile
    except FileExistsError:
        raise InvalidOperationError(
            f"The file {path} already exists; remove it or choose another FileName.",
            target=str(path),
        ) from None
    finally:
        temporary.unlink(missing_ok=True)
    return ExportedZone(zone_contents.name, str(path), contents.serial, len(zone_contents.records))
