"""Model files in one place: our safetensors + JSON folder, Hugging Face and sentence-transformers
folders (read, and written by ``sentence_transformers``), atomic folder writes, and training
workdirs (orbax checkpoints, ``WORKDIR@STEP``, ``WORKDIR@best``)."""
