"""Data layer: the nuScenes loader (real or built-in synthetic dataroot) and the generator."""
