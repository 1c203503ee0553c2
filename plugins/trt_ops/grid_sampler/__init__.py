"""grid_sampler custom op."""
