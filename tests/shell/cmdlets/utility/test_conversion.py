"""ConvertTo-Json, ConvertTo-SecureString and Get-Date."""

from __future__ import annotations

import json

from tests.shell.cmdlets.utility.utility_shell import Shell


def test_convertto_json(shell: Shell) -> None:
    assert shell.run("$dbs[0] | ConvertTo-Json") == (
        '{\n  "Name": "DB01",\n  "Server": "MBX01",\n  "Size": 30,\n  "Site": "BJ"\n}\n'
    )
    data = json.loads(shell.run("$dbs | ConvertTo-Json"))
    assert [d["Name"] for d in data] == ["DB01", "db02", "DB10"]
    assert shell.lines("$dbs | select Name -First 2 | ConvertTo-Json -Compress") == [
        '[{"Name":"DB01"},{"Name":"db02"}]'
    ]
    assert shell.lines("ConvertTo-Json @(1, 'a', $true, $null) -Compress") == ['[1,"a",true,null]']


def test_convertto_json_depth_and_values(shell: Shell) -> None:
    shell.run("$deep = @{a=@{b=@{c=@{d=1}}}}")
    assert shell.lines("$deep | ConvertTo-Json -Compress") == [
        '{"a":{"b":{"c":"System.Collections.Hashtable"}}}'
    ]
    assert shell.lines("$deep | ConvertTo-Json -Compress -Depth 5") == ['{"a":{"b":{"c":{"d":1}}}}']
    shell.run("$p = ConvertTo-SecureString 'pw' -AsPlainText -Force")
    assert shell.lines("[pscustomobject]@{P=$p} | ConvertTo-Json -Compress") == [
        '{"P":"System.Security.SecureString"}'
    ]
    out = shell.run("Get-Date -Year 2010 -Month 1 -Day 2 | ConvertTo-Json")
    assert out.startswith('"2010-01-02T')
    shell.run("1 | ConvertTo-Json -Depth -1")
    assert "Depth" in shell.messages[0]


def test_get_date(shell: Shell) -> None:
    assert shell.lines("Get-Date -Year 2010 -Month 11 -Day 9 -Format 'yyyy-MM-dd'") == [
        "2010-11-09"
    ]
    assert shell.lines("(Get-Date -Year 2010).Year") == ["2010"]
    assert shell.lines("Get-Date -Year 2010 -Month 1 -Day 5 -UFormat '%Y/%m/%d'") == ["2010/01/05"]
    shell.run("Get-Date -Month 13")
    assert shell.messages[0].startswith("Cannot make a date")


def test_convertto_securestring(shell: Shell) -> None:
    assert shell.lines("ConvertTo-SecureString 'P@ss' -AsPlainText -Force") == [
        "System.Security.SecureString"
    ]
    shell.run("ConvertTo-SecureString 'P@ss' -AsPlainText")
    shell.run("ConvertTo-SecureString 'P@ss'")
    assert shell.messages[0].startswith("The system cannot protect plain text input.")
    assert shell.messages[1].startswith("Input string was not in a correct format.")
