"""Exchange certificates in the directory: each server's certificates and pending
requests, the services each is enabled for, and what the servers serve.

The rules, as Exchange 2010's certificate cmdlets keep them:

- A certificate belongs to one server (`-Server`; by default the organization's only
  Client Access server, else it must be named). A thumbprint is unique per server.
- `new_request` makes a key and a PKCS#10 request whose subject alternative names are
  every -DomainName (and the -Include... names) with the subject's CN added; the
  request waits in the server's store with Status PendingRequest until
  `import_certificate` brings the certificate issued for it (matched by its public
  key), which completes it in place: same key, new thumbprint.
- `new_self_signed` makes a self-signed certificate (subject CN=<server name>, domains
  the server's name and FQDN unless given) enabled for IMAP, POP and SMTP by default.
  Exchange's own self-signed certificates are Valid; see `casarray.pki.trust`.
- `import_certificate` takes PEM, DER, PKCS #7 or PKCS #12 data: a certificate with
  its key, or a certificate that completes a pending request. A certificate with no
  key and no pending request is refused (a server can't use it).
- `enable` adds services (IMAP, POP, IIS, SMTP) to those a certificate has. IIS is
  bound to one certificate per server, as IIS's Default Web Site is: enabling IIS on
  one takes it from the one that had it. Pending requests, certificates without a
  key, expired or not yet valid ones, and untrusted ones can't be enabled.
- Status: PendingRequest, Valid, Untrusted (checked when the certificate arrives,
  `casarray.pki.trust`), and DateInvalid (checked on every read: expired or not yet
  valid). Exchange's Revoked, Invalid and RevocationCheckFailure are not computed (no
  CRLs here).
- Private keys are sealed at rest with the organization's key-encryption key, kept
  outside the database (`casarray.pki.vault`); they leave the directory only for a
  server (`serving`) or as a password-protected PKCS #12 file, and only when the key
  was made exportable (-PrivateKeyExportable $true).

- `values`: Exchange's names and values, and the parameter checks.
- `objects`: what the services return.
- `reading` (Get-ExchangeCertificate, and what every service reads), `requests`
  (New-ExchangeCertificate), `transfer` (Import-, Export-, Remove-), `services`
  (Enable-, and what the servers serve), `checks` (Test-ExchangeCertificate): one
  service each; `sealing`: the key vault they share.
- `service`: `Certificates`, `Directory.certificates`, the entry point.
"""
