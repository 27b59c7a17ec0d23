"""Running a folder: discovery and output mapping (jobs), the batch runner, provenance and resume records."""
