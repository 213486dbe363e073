"""The Hub Transport role: SMTP receive (`receive`), a durable queue (`queue`), and
delivery into the mailbox databases (`delivery`), run by `casarray transport run SERVER`
(`transport_process`).

The protocol and policy decisions (`policy`, `replies`, `headers`) are pure functions
and small classes; the aiosmtpd layer around them (`receive`) is thin. What the
directory says of the role (accepted domains, receive connectors, the server's
settings) reaches this package through one adapter, `config.load_config`, as a frozen
`TransportConfig`.
"""
