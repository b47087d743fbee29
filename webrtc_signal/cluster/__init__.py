"""Several server processes sharing lobbies through Redis (docs/cluster.md).

Nothing here is imported unless the server is started with ``--redis`` (or a
`SignalingConfig` with ``redis_url``)."""
