"""The built-in load balancer of a client access array (Windows NLB's model): the
cluster's view (`model`, made from the directory's snapshot of the cluster by
`directory_view`), the choice of a node per connection (`hashing`), node health
(`health_probes`), the control plane that keeps a data plane in step (`control_plane`),
the data planes (`proxy` and `udp_proxy`, `nft`, `haproxy_engine`), and the process of
one cluster's balancer (`balancer_process`)."""
