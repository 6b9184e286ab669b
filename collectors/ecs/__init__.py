"""Pure mappers: one raw record in, one ECS dict out. No I/O here, so they are fast and testable."""
