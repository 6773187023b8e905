"""The latent space: drawing and reading latents, walks, arithmetic, and turning latents into images."""
