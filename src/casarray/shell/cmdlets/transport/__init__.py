"""Hub Transport configuration cmdlets, with Exchange 2010's names and parameters:

    New-AcceptedDomain -Name Contoso -DomainName contoso.com -DomainType Authoritative
    Get-ReceiveConnector -Server MBX01
    New-ReceiveConnector -Name "App Relay" -Server MBX01 -Usage Custom `
        -Bindings 0.0.0.0:25 -RemoteIPRanges 10.0.0.5 -PermissionGroups AnonymousUsers
    New-SendConnector -Name Internet -AddressSpaces "SMTP:*;1" -DNSRoutingEnabled $true
    Set-TransportServer MBX01 -MessageExpirationTimeout 3.00:00:00

The rules live in `Directory.transport`. One module per noun: `accepted_domains`,
`receive_connectors`, `send_connectors`, `transport_servers`; `common` holds what they
share. Get-Command shows them all as the module `transport`.
"""
