"""Network Load Balancing in the directory: Windows features, NLB clusters, their nodes,
port rules and load weights, with NLB's names, values and defaults (ServerManager's
and the NetworkLoadBalancingClusters module's).

- `values`: NLB's names, values and defaults, and the parameter checks.
- `objects`: what the services return (Get-NlbCluster's records, ...), and
  `ClusterSnapshot`, a whole cluster read at once.
- `reading`: what every service reads: a cluster by identity or by a host, and its
  nodes, computed for a cluster that follows a client access array.
- `features`, `clusters`, `nodes`, `port_rules`, `weights`, `view`: one service each.
- `service`: `NlbService`, `Directory.nlb`, the cmdlets' entry point.

The balancer builds its own view of a cluster from a `ClusterSnapshot`
(`casarray.balancer.directory_view`); nothing here imports the balancer.
"""
