"""Pydantic specs: what plugins register (registry) and what users ask for (run, quant, report)."""
