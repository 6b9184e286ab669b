"""Collectors: read agency systems, normalize every record to ECS, ship it to the store at least once."""
