"""Mailbox databases (the Information Store): folders and messages of every mailbox in
a database, behind the typed interface of `mailstore.interface`."""
