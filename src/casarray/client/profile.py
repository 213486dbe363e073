"""Client profiles, as Outlook keeps them: what Autodiscover said for an address (the
server name to connect to, its ServerDN, the IMAP and SMTP settings), kept until
Autodiscover or a referral says otherwise.

Where: `$CASARRAY_HOME/client/profiles/<address>.json`, or `~/.casarray-client/
profiles/` when CASARRAY_HOME is not set; the folder has mode 0700. The file `default`
there names the profile used when a command names none (the last one made).

Passwords are not in the profile. Outlook keeps them in the operating system's
credential vault; this client asks for one each time (`--password`, the environment
variable CASARRAY_PASSWORD, or a prompt), unless `profile new --save-password` was
given: then it is kept in clear in `<address>.password` beside the profile, mode 0600
(as ~/.netrc or git's credential store keep theirs), and removed with
`--forget-password`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from casarray.client.autodiscover import AutodiscoverResult
from casarray.client.errors import ProfileError
from casarray.pki.files import PRIVATE_FILE, ensure_folder, write_file

ADDRESS = re.compile(r"^[^@\s/\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
FORMAT = 1


def check_address(address: str) -> str:
    """`address` as given, or ProfileError saying it is not an e-mail address."""
    if not ADDRESS.match(address) or address.startswith("."):
        raise ProfileError(f"'{address}' is not an e-mail address")
    return address


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Profile:
    """One account's profile."""

    address: str
    display_name: str
    server: str  # the EXCH Server: the name the client connects to
    server_dn: str
    mdb_dn: str
    legacy_dn: str
    imap_port: int
    imap_encryption: str  # SSL (implicit TLS)
    login_name: str
    smtp_server: str | None
    smtp_port: int | None
    owa_url: str | None
    autodiscover_url: str
    # how the profile was made (None: not given, the lab's or the system's)
    dns: str | None = None
    ca_file: str | None = None
    port_offset: int | None = None
    created: str = ""
    updated: str = ""

    @classmethod
    def from_autodiscover(
        cls,
        result: AutodiscoverResult,
        *,
        address: str | None = None,
        dns: str | None = None,
        ca_file: str | None = None,
        port_offset: int | None = None,
    ) -> Profile:
        s = result.settings
        if s.imap is None:
            raise ProfileError(f"Autodiscover gave {s.address or address} no IMAP settings")
        now = _now()
        return cls(
            address=address or s.address,
            display_name=s.display_name,
            server=s.server,
            server_dn=s.server_dn,
            mdb_dn=s.mdb_dn,
            legacy_dn=s.legacy_dn,
            imap_port=s.imap.port,
            imap_encryption=s.imap.encryption,
            login_name=s.imap.login_name or address or s.address,
            smtp_server=s.smtp.server if s.smtp else None,
            smtp_port=s.smtp.port if s.smtp else None,
            owa_url=s.owa_url,
            autodiscover_url=result.url,
            dns=dns,
            ca_file=ca_file,
            port_offset=port_offset,
            created=now,
            updated=now,
        )

    def refreshed(self, result: AutodiscoverResult) -> Profile:
        """This profile with what a new Autodiscover answer says (how it was made and
        when are kept)."""
        new = Profile.from_autodiscover(
            result,
            address=self.address,
            dns=self.dns,
            ca_file=self.ca_file,
            port_offset=self.port_offset,
        )
        return replace(new, created=self.created)

    def moved_to(self, server: str) -> Profile:
        """This profile pointed at `server` (an IMAP referral names only the host)."""
        smtp = server if self.smtp_server == self.server else self.smtp_server
        return replace(self, server=server, smtp_server=smtp, updated=_now())

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> Profile:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ProfileError(f"{where} is not a casarray client profile (format {FORMAT})")
        names = {f.name for f in fields(cls)}
        try:
            profile = cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:
            raise ProfileError(f"{where} is damaged: {exc}") from None
        if not isinstance(profile.server, str) or not isinstance(profile.imap_port, int):
            raise ProfileError(f"{where} is damaged: no server name or IMAP port")
        return profile


def profiles_folder() -> Path:
    """Where profiles are kept (module doc)."""
    home = os.environ.get("CASARRAY_HOME")
    base = Path(home).expanduser() / "client" if home else Path.home() / ".casarray-client"
    return base / "profiles"


class ProfileStore:
    """The profiles in one folder."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or profiles_folder()

    def path(self, address: str) -> Path:
        return self.folder / f"{check_address(address).lower()}.json"

    def password_path(self, address: str) -> Path:
        return self.folder / f"{check_address(address).lower()}.password"

    def addresses(self) -> list[str]:
        """The addresses that have a profile, sorted."""
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json"))

    def exists(self, address: str) -> bool:
        return self.path(address).is_file()

    def load(self, address: str | None = None) -> Profile:
        """The profile of `address` (None: the default one); ProfileError when there
        is none or its file can't be read."""
        if address is None:
            address = self.default()
        path = self.path(address)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ProfileError(
                f"there is no profile for {address}; make one with "
                f"'casarray client profile new {address}'"
            ) from None
        except (OSError, ValueError) as exc:
            raise ProfileError(f"the profile {path} can't be read: {exc}") from None
        return Profile.from_json(data, str(path))

    def save(self, profile: Profile, *, make_default: bool = False) -> Path:
        ensure_folder(self.folder)
        path = self.path(profile.address)
        text = json.dumps(profile.to_json(), indent=2) + "\n"
        write_file(path, text.encode(), 0o644)
        if make_default:
            write_file(self.folder / "default", (profile.address.lower() + "\n").encode(), 0o644)
        return path

    def default(self) -> str:
        """The address of the default profile: the one `default` names, else the only
        one; ProfileError when there are none or several and no default."""
        with contextlib.suppress(OSError):
            named = (self.folder / "default").read_text(encoding="utf-8").strip()
            if named and self.path(named).is_file():
                return named
        known = self.addresses()
        if len(known) == 1:
            return known[0]
        if not known:
            raise ProfileError(
                "there is no client profile; make one with 'casarray client profile new ADDRESS'"
            )
        raise ProfileError(f"there are several profiles ({', '.join(known)}); name one")

    def save_password(self, address: str, password: str) -> Path:
        ensure_folder(self.folder)
        path = self.password_path(address)
        write_file(path, password.encode("utf-8"), PRIVATE_FILE)
        return path

    def saved_password(self, address: str) -> str | None:
        try:
            return self.password_path(address).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def forget_password(self, address: str) -> bool:
        try:
            self.password_path(address).unlink()
        except FileNotFoundError:
            return False
        return True
