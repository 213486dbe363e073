"""The fault-injection soak (issue 17): a mixed load through the lab array's names while
processes and hosts die at random, and a check that nothing acknowledged was lost.

- `history`: what each client was told, as JSON lines written as it happens;
- `load`: the clients (IMAP, SMTP, EWS, web mail, the shell) and their histories;
- `chaos`: the fault injector (kill -9 by pid, hosts, partitions, PostgreSQL);
- `checker`: the histories against what the lab holds at the end;
- `report`: the figures, printed by `bench/soak.py` and asserted by the suite.
"""
