"""DNS in the directory: the zones casarray's DNS server is authoritative for, what is in
them, and who sees what (the DnsServer module's names and defaults).

- `values`: DNS's names, values and defaults, and the parameter checks.
- `objects`: what the services return, and `DnsContents`, everything served.
- `settings`, `zones`, `resource_records`, `policies` (client subnets and query
  resolution policies): one service each.
- `contents`: every zone built from the topology in one read (the rules of what is
  served, the serial, the inside and outside views).
- `service`: `DnsService`, `Directory.dns`, the entry point.
"""
