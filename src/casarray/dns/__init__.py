"""casarray's DNS: an authoritative server whose zones come from the directory.

`zones` turns the directory's DNS data (`casarray.directory.dns`) into dnspython
zones, one set per view; `export` writes a zone as an RFC 1035 master file; the
server answers queries from them.
"""
