"""Wire formats that servers and clients of casarray share, below both: IMAP's
modified UTF-7 for mailbox names (`utf7`, RFC 3501 5.1.3), used by the IMAP server
(`access.imap`) and the Outlook-like client (`client`). Pure functions, no I/O."""
