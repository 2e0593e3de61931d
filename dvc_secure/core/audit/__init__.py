"""The audit trail's event model: signed, hash-chained events (pure)."""
