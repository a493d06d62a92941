"""Unicode security data the gateway compares names with (UTS #39), from files committed
under ``gateway/data/unicode/`` with their Unicode version in their headers."""
