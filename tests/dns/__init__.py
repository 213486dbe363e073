"""The DNS server and its zones."""
