"""Readers for the offline corpora the project ships with or installs."""
