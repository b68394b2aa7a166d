"""Model kinds: each one a unit behind `ModelKind` (base.py), looked up by name in registry.py."""
