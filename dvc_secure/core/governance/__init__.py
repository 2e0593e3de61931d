"""Governance reports (inventory, overlap, OCSF, alerts, incidents): pure models and rules."""
