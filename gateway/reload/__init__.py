"""Policy changes without a restart: the policy files read again on SIGHUP, on the admin
API's request, or when one changes on disk, validated whole, and swapped in at once."""
