"""The built-in load balancer of a client access array (Windows NLB's model): the
cluster's view (`model`), the choice of a node per connection (`hashing`), node
health (`health`), and the data planes (`proxy`, `nft`, `haproxy`)."""
