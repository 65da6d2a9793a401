"""The docs service's reactions to other services' events."""
