"""Rate limits on registration: the policy's ``rate_limits`` applied around the decision."""
