"""What the gateway remembers about the clients registered through it."""
