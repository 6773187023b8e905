"""The networks' building blocks: spectral norm, initialisation, layer tables, generator files."""
