"""Diagnostics: the Test-* cmdlets' checks and Exchange's Best Practices Analyzer, which
read the directory and the running services together.

- `array_analyzer`: Test-ClientAccessArray's findings per site and array;
- `member_health`: what the running balancers and servers say of the array's members;
- `connectivity`: the test mailboxes of Test-MAPIConnectivity / Test-OutlookConnectivity.

It sits above the services (it reads their status files and probes them) and below the
shell, whose cmdlets call it; the directory never imports it.
"""
