"""The lab on several hosts (`casarray lab up --hosts`): one Linux network namespace
per server, bridges per site, a router between them, and clients (DESIGN.md, "Scaling
past one machine"). `plan` lays it out (pure), `network` makes it and acts on its
hosts (root)."""
