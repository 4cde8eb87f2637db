.PHONY: install test demo lint bench
install:
	bash scripts/install.sh
test:
	.venv/bin/python -m pytest
demo:
	.venv/bin/gecko-jax demo
lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
bench:
	.venv/bin/python benchmarks/encode_cpu.py
