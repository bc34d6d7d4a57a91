"""Traffic between pods: connectivity probes, scapy from a pod's namespace, the SCTP codec, the
live NetworkPolicy conformance runner."""
