"""Detection: Sigma rules evaluated on every event as it streams in, and hunts over stored events."""
