"""Pure image algorithms the tasks build on: scratch detection, inpainting, shadow masks and relighting, colorization.

They raise per-image errors (``ImageError``) for bad data, never usage errors.
"""
