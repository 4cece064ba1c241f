"""Generic file loader (placeholder)."""
