"""calinet topologies package."""
