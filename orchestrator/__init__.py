"""calinet orchestrator package."""
