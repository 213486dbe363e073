"""Windows NLB as it really works: on the hosts. Every member of the cluster has the
cluster IP, receives every packet sent to it, and keeps only the connections of the
buckets it owns (nftables in its own network namespace); the hosts agree on who owns
what by heartbeats and convergence, with no box in the middle.

- `config`: `NlbHostConfig`, what one host's driver is told (from the directory, or a
  JSON file); `macs`: the cluster MACs of the operation modes;
- sans-IO cores: `heartbeat` (the wire format), `bucket_map` (the map every host
  computes alike), `membership` (convergence), `nft_rules` (the filter as nft text);
- `host_setup` (cluster IP, MAC, sysctls) and `driver` (`NlbHostDriver`, asyncio);
  `python -m casarray.balancer.nlb_host CONFIG.json` runs a driver as a process.
"""
