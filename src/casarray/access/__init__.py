"""The Client Access services every CAS runs, stateless: IMAP (`imap/`: a sans-IO core
and its asyncio server) and HTTP (`http/`: Autodiscover, autoconfig, health pages, web
mail, the JSON API). `cas_process` is the process of one Client Access server;
`cas_master` runs several of them on the same ports; `tls` picks the certificate."""
