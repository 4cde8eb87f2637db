"""Plain utilities every layer may use: paths (local or ``gs://``), stage fingerprints and
locks, config type checks, the offline assets and their hub copies, device meshes."""
