"""The Exchange Management Shell of casarray: a PowerShell-syntax language and the cmdlets."""
