"""Exception hierarchy shared by every cim process.

    CimError(code)                 -- anything cim raises on purpose
    +-- FrameError(code, reason)   -- a client sent a frame the contract refuses
    +-- TokenError                 -- a login token is malformed, expired or revoked
    +-- ApiError(status, code)     -- an HTTP answer of the route's error envelope
    +-- SettingsError              -- a CIM_* variable has a bad value (fail fast)

Boundaries translate them: the node turns ``FrameError`` into an ``error`` frame
and a close; the route renders ``ApiError`` as ``{"error", "detail"}``.
"""

from __future__ import annotations

__all__ = ["ApiError", "CimError", "FrameError", "SettingsError", "TokenError"]


class CimError(Exception):
    """Base class; ``code`` is the machine-readable reason from the contract."""

    code: str = "error"

    def __init__(self, code: str | None = None, detail: str = "") -> None:
        if code is not None:
            self.code = str(code)
        self.detail = detail
        super().__init__(f"{self.code}: {detail}" if detail else self.code)


class FrameError(CimError):
    """A bad frame from a client; the connection gets ``error{code}`` then a close."""


class TokenError(CimError):
    """A login token that must not be accepted."""

    code = "bad_token"


class SettingsError(CimError):
    """A setting with an unusable value."""

    code = "bad_setting"


class ApiError(CimError):
    """An HTTP error answer: ``status`` plus the envelope's ``code`` and ``detail``."""

    def __init__(self, status: int, code: str, detail: str = "") -> None:
        self.status = status
        super().__init__(code, detail or code.replace("_", " "))
