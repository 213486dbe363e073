"""What the lab holds at the end of a soak, read straight from the stores (not through
the servers): every folder of every user's mailbox (the mail store API), the Hub
Transport queues (each transport's status file names its queue), and the directory's
values that the soak's cmdlets changed.

`python -m casarray.lab.soak.observe --directory URL --home DIR --users a,b --settings
s1,s2 OUT.json` writes the same as JSON (the bytes in base64), for a lab on several
hosts where the stores are reached from inside DC01.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from casarray.lab.soak.checker import Found, Observed
from casarray.lab.soak.history import decode, encode

FINAL = ("Delivered", "Failed")
CHUNK = 200


def read_mailboxes(url: str, users: list[str], observed: Observed) -> None:
    from casarray.directory import Directory
    from casarray.mailstore.provisioning import open_mailbox

    with Directory.open(url) as directory:
        for user in users:
            mailbox = directory.mailboxes.one(user)
            store = open_mailbox(directory.databases.one(mailbox.database), mailbox.guid)
            for folder in store.folders():
                if folder.special_use:
                    observed.special_use[(user, folder.special_use.lower())] = folder.name
                infos = store.messages(folder.name)
                found: list[Found] = []
                for start in range(0, len(infos), CHUNK):
                    part = infos[start : start + CHUNK]
                    bodies = store.bodies(folder.name, [m.uid for m in part])
                    found.extend(Found(m.uid, m.flags, bodies.get(m.uid, b"")) for m in part)
                observed.folders[(user, folder.name)] = found


def setting(directory: Any, name: str) -> Any:
    """A value the soak's cmdlets change: `db:NAME:exists`, `db:NAME:rpc`,
    `db:NAME:warning` (IssueWarningQuota in bytes), `portrule:CLUSTER:PORT:affinity`."""
    parts = name.split(":")
    if parts[0] == "db":
        found = [d for d in directory.databases.get() if d.name.lower() == parts[1].lower()]
        if parts[2] == "exists":
            return bool(found)
        if not found:
            return None
        if parts[2] == "rpc":
            return found[0].rpc_client_access_server.lower()
        if parts[2] == "warning":
            return found[0].quotas.issue_warning
    if parts[0] == "portrule":
        rules = directory.nlb.port_rules(parts[1], port_number=int(parts[2]))
        return rules[0].affinity if rules else None
    return None


def read_settings(url: str, names: list[str], observed: Observed) -> None:
    from casarray.directory import Directory

    with Directory.open(url) as directory:
        for name in names:
            observed.directory[name] = setting(directory, name)


def read_queues(home: Path, observed: Observed) -> None:
    """The recipients of every Hub Transport's queue that are neither Delivered nor
    Failed (each with its state and last error)."""
    from casarray.transport.queue_stores import open_queue

    for path in sorted((home / "run").glob("transport-*.json")):
        try:
            said = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        server = str(said.get("server", path.stem.removeprefix("transport-")))
        queue = open_queue(server, said.get("queue_url"))
        try:
            for message in queue.messages():
                for recipient in message.recipients:
                    if recipient.state not in FINAL:
                        observed.queued.append(
                            {
                                "what": f"{server} {message.message_id} to {recipient.address}",
                                "why": f"{recipient.state}, {recipient.attempts} attempts, "
                                f"last error {recipient.last_error!r}",
                            }
                        )
        finally:
            queue.close()


def observe(url: str, home: Path, users: list[str], settings: list[str]) -> Observed:
    observed = Observed()
    read_mailboxes(url, users, observed)
    read_settings(url, settings, observed)
    read_queues(home, observed)
    return observed


def to_json(observed: Observed) -> dict[str, Any]:
    return {
        "folders": [
            [user, folder, [[m.uid, sorted(m.flags), encode(m.raw)] for m in messages]]
            for (user, folder), messages in observed.folders.items()
        ],
        "special_use": [[u, s, n] for (u, s), n in observed.special_use.items()],
        "queued": observed.queued,
        "directory": observed.directory,
        "process_problems": observed.process_problems,
    }


def from_json(data: dict[str, Any]) -> Observed:
    observed = Observed()
    for user, folder, messages in data["folders"]:
        observed.folders[(user, folder)] = [
            Found(int(uid), frozenset(flags), decode(raw)) for uid, flags, raw in messages
        ]
    for user, special, name in data["special_use"]:
        observed.special_use[(user, special)] = name
    observed.queued = list(data["queued"])
    observed.directory = dict(data["directory"])
    observed.process_problems = list(data["process_problems"])
    return observed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m casarray.lab.soak.observe")
    parser.add_argument("--directory", required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--users", default="")
    parser.add_argument("--settings", default="")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    observed = observe(
        args.directory,
        Path(args.home),
        [u for u in args.users.split(",") if u],
        [s for s in args.settings.split(",") if s],
    )
    Path(args.out).write_text(json.dumps(to_json(observed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
