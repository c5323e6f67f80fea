"""Storage: schema, engine set-up, the single batching writer and the read queries."""
