"""What every casarray server process shares, below every service (Windows' service
control manager, in Exchange's world).

- `errors.StartupError`: the one error a process that can't start raises; the process
  logs it, says it on the terminal, and exits 1.
- `status.StatusFile`: the file a running process writes to say it serves and how
  (`$CASARRAY_HOME/run/<kind>-<name>.json`), written atomically, read with one
  liveness rule (`status.pid_alive`).
- `logs.log_to`: where a process's log goes, and the one line format.
- `parent`: dying with the parent process (PR_SET_PDEATHSIG).
- `pool.WorkerPool`: worker processes started, awaited, restarted with `Backoff`.
- `lifecycle.ServiceProcess` and `lifecycle.run_process`: the one life cycle (signals,
  start, announce, serve, stop, cleanup) that the Client Access server, the DNS
  server, the Mailbox role, the balancer and the lab supervisor all follow, after
  aiosmtpd's `Controller` and Mailman 3's `Runner`: a base with hooks, specialised
  per role.

It imports nothing of casarray but `casarray.errors` and `casarray.config`.
"""
