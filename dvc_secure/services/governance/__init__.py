"""Governance: gather signed inputs for the reports of core/governance (docs/governance.md)."""
