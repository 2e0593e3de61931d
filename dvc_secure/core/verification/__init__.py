"""The verification engine: sidecars, metafiles and trust in, findings out (pure)."""
