"""scapy packet tests (root): crafted packets inside pods against the policy dataplane."""
