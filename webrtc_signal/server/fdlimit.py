"""Open-file limits: every connection is a file descriptor.

The default --max-peers (4096) needs more descriptors than the soft limit
most systems start a service with (1024, systemd's default). Past the soft
limit accept() fails and Twisted closes the newcomer without a word. So the
standalone server raises its soft limit toward the hard limit at start, and
refuses connections beyond what the limit allows with HTTP 503 instead.
"""

from __future__ import annotations

import resource

# Descriptors kept for everything that is not an open client connection:
# connections still in their opening handshake, log files, the listening
# sockets, TLS certificate reads, and whatever an embedding game server opens.
FD_MARGIN = 256


def raise_open_file_limit(needed: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to ``needed`` if it is lower, up to the
    hard limit. Returns the (soft, hard) limits now in force;
    ``resource.RLIM_INFINITY`` stands for no limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft, hard
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            # Some sandboxes refuse even within the hard limit: keep what we have.
            return soft, hard
        soft = target
    return soft, hard


def connection_budget(soft_limit: int) -> int:
    """Most connections the soft limit leaves room for (0 = no limit)."""
    if soft_limit == resource.RLIM_INFINITY:
        return 0
    return max(1, soft_limit - FD_MARGIN)
