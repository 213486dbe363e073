"""The Client Access services every CAS runs, stateless: IMAP and HTTP."""
