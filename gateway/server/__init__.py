"""Running the gateway as processes: one serving process (:mod:`gateway.server.serve`)
and, with ``server.workers`` above 1, a parent supervising several of them
(:mod:`gateway.server.supervisor`)."""
