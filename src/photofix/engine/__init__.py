"""Running networks: loading a model once with its declared traits, tiling any image through it, CPU rewrites, adapting images to a model."""
