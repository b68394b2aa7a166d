"""FastAPI service that serves recommendations from an exported model bundle."""
