"""How the SDK checks the certificates of an HTTPS route and a TLS node.

Against the system store, or against the PEM bundle named by ``tls_ca`` (a
``Client``/``AdminClient`` argument) or else the ``CIM_TLS_CA`` environment
variable -- what ``cim up --tls`` prints as ``ca:``. One context per bundle is
made and shared (loading a store costs milliseconds; a bench opens thousands
of clients).
"""

from __future__ import annotations

import functools
import os
import ssl

__all__ = ["TLS_CA_VAR", "tls_context"]

TLS_CA_VAR = "CIM_TLS_CA"


def tls_context(ca: str | None = None) -> ssl.SSLContext:
    """The client context for ``ca`` (None: ``$CIM_TLS_CA``, else the system store)."""
    return _context(ca if ca is not None else os.environ.get(TLS_CA_VAR, ""))


@functools.cache
def _context(ca: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca or None)
