"""The documents domain: report periods and document names (R4.3, R4.4)."""
