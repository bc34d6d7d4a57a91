"""calinet policy package."""
