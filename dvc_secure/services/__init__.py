"""Operations (seal, verify, restore, access changes, re-encryption, audit, hook checks),
each orchestrating the core and the adapters. Never imported by core or adapters."""
