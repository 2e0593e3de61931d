"""State on this machine: identities, the clone's trust pin, the push journal, audit state."""
