"""Initial access tokens (RFC 7591 §3): from the policy, or issued at run time by an admin."""
