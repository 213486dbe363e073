"""Network Load Balancing cmdlets, with the parameters and defaults of Windows'
ServerManager (Install-WindowsFeature) and NetworkLoadBalancingClusters modules:

    Install-WindowsFeature NLB -ComputerName CAS01
    New-NlbCluster -HostName CAS01 -InterfaceName Ethernet -ClusterName bj-cas.lab.net `
        -ClusterPrimaryIP 127.77.1.10
    Add-NlbClusterNode -HostName CAS01 -NewNodeName CAS02 -NewNodeInterface Ethernet
    Get-NlbClusterNode -NodeName CAS02 | Stop-NlbClusterNode -Drain -Timeout 300

A cluster is named by -HostName (one of its hosts, as NLB does; its FQDN or IP works
too) or piped in (-InputObject). A node is named by its server (-HostName of the node
cmdlets) or piped in. The rules live in `Directory.nlb`.

One module per object: `features`, `clusters` (and their HAProxy export), `nodes`,
`port_rules`; `common` holds what they share. Get-Command shows them all as the
module `nlb`.
"""
