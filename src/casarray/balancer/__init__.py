"""The built-in load balancer of a client access array (Windows NLB's model): the
cluster's view (`model`, made from the directory's snapshot of the cluster by
`directory_view`), the choice of a node per connection (`hashing`), node health
(`health`), and the data planes (`proxy`, `nft`, `haproxy`)."""
