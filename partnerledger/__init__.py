"""The `partnerledger` command: runs the embedded stack and operates it.

It starts services as processes (`python -m services.<name>`) and never imports
their code (import-linter contract)."""
