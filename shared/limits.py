"""Process limits a server raises for itself at start."""

from __future__ import annotations

import logging
import resource

__all__ = ["raise_open_files"]

log = logging.getLogger(__name__)


def raise_open_files() -> int:
    """Raise this process's open-files limit to its hard limit and return the limit now in force.

    A node holds a descriptor per client, the route one per HTTP connection; the children a
    process starts afterwards (``cim up``'s servers) inherit the raised limit. Raising the hard
    limit itself needs privileges (``ulimit -Hn``, systemd ``LimitNOFILE=``)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:  # e.g. an unlimited hard limit above the kernel's nr_open
        log.warning("open files limit stays at %d: %s", soft, exc)
        return soft
    return hard
