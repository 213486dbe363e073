"""The lab: a whole organization on one machine (DESIGN.md, "The lab"): its topology
(`topology`), its settings file (`config`), the supervisor that runs one process per
role (`supervisor`, answering on `control_socket`), what each `casarray lab` command
does (`actions`, with its arguments in `lab_command`), the status view (`status`), one
lab at a time on the lab addresses (`claim`), the walkthrough (`walkthrough`), and the
lab on several hosts, one network namespace per server (`hosts`)."""
