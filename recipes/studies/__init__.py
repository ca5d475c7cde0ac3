"""Seeded residual-design studies: ``python -m recipes.study study=NAME`` (see docs/studies.md)."""
