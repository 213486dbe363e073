"""PowerShell's utility cmdlets, with PowerShell's semantics and aliases, one module per
purpose:

- `object_cmdlets`: filtering and shaping the pipeline (Where-Object, ForEach-Object,
  Select-Object, Sort-Object, Measure-Object);
- `members`: Get-Member;
- `output`: formatting and output (Format-Table, Format-List, Out-String, Out-Null,
  Out-Host, Out-Default, Write-Output, Write-Host, Write-Warning, Write-Error) and
  Export-Csv;
- `conversion`: ConvertTo-Json, ConvertTo-SecureString and Get-Date;
- `common`: what they share (-InputObject, reading all input first).

Get-Command shows them all as the module `utility`. Everything streams where
PowerShell streams: Where-Object and ForEach-Object pass each object on as it arrives,
and Select-Object -First stops the commands before it once it has its objects.
Sort-Object, Measure-Object and the Format- cmdlets read all their input first, as
they must.
"""
