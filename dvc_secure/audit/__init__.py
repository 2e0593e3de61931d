"""Tamper-evident audit trail: signed, hash-chained, encrypted events on the secure remote."""
