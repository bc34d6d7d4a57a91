"""What runs for each node: the kubelet and its CNI, containers and probes, the policy agent and
its iptables/ipset writer, kube-proxy's agent, BGP routing wiring, blackhole routes, NFLOG."""
