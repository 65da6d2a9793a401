"""Test support: real infrastructure (embedded PostgreSQL, Tansu) and helpers."""
