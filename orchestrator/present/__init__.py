"""What users read: kubectl-style tables, YAML/JSON output and `kubectl describe` text. Pure."""
