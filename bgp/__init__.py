"""calinet bgp package."""
