"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): fetching
them safely (:mod:`gateway.cimd.fetch`, :mod:`gateway.cimd.addresses`) and judging them
(:mod:`gateway.cimd.judge`)."""
