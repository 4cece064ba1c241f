"""MovieLens loaders (placeholder, replaced by the loaders issue work)."""
