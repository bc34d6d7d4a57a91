"""Controllers: level-triggered reconcilers that read the store and write desired objects.

Each module holds one controller with `reconcile(store, now) -> bool` (True if it wrote).
They touch nothing but the store, so they are tested against a real Store in a temp dir.
"""
