"""The login dialogue before the chat: username, then a cached token or the password,
and registration when the route does not know the name.

One ``/login`` per start: its answer is cached for the next run and the client's
``connect()`` uses that same answer, so the balancer hands out one node per chat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
from prompt_toolkit import PromptSession

from cim_cli.chat.commands import valid_name
from cim_cli.chat.formatting import error_text, say
from cim_cli.chat.profile import CachedLogin, Profile
from cim_client import CimApiError, CimError, Client, NodeAddress
from shared.protocol import ErrorCode, KickReason

__all__ = ["LoginDialog"]

log = logging.getLogger(__name__)

_TOKEN_GONE = frozenset({ErrorCode.BAD_TOKEN, KickReason.REVOKED, KickReason.LOGOUT})
"""Refusals of a cached token that mean it will never work again."""


class LoginDialog:
    """Before the chat: username, password (or a cached token), register on request.

    ``make_client(username, password=None, **kwargs)`` builds the client (the
    screen's, so that its messages and state changes go to the screen).
    """

    def __init__(
        self,
        profile: Profile,
        route: str,
        username: str | None,
        password: str | None,
        make_client: Callable[..., Client],
        device: str = "default",
    ) -> None:
        self.profile = profile
        self.device = device
        self._make_client = make_client
        self.route = route
        self.username = username
        self.password = password
        self._password_from_env = password is not None
        self._session: PromptSession[str] = PromptSession()

    async def run(self) -> Client | None:
        """A connected client, or ``None`` (the reason was printed)."""
        try:
            self.username = self.username or await self._ask_username()
            client = await self._from_cache() if self.password is None else None
            if client is None:
                client = await self._with_password()
        except (CimApiError, CimError, OSError, httpx.HTTPError) as exc:
            say("error", f"cannot log in to {self.route}: {error_text(exc)}")
            return None
        if client is not None:
            self.profile.remember(self.route, client.username)
        return client

    async def ask_password(self, why: str) -> str:
        """Ask for the password (in the middle of a chat too); Ctrl-C/D raise."""
        say("warn", why)
        return await self._session.prompt_async(f"password for {self.username}: ", is_password=True)

    @property
    def _cached_as(self) -> str:
        """The token cache's name of this login: a token is for one device of a user."""
        return f"{self.username}/{self.device}"

    async def _ask_username(self) -> str:
        while True:
            name = (await self._session.prompt_async("username: ")).strip()
            if valid_name(name):
                return name
            say("error", "a username is 1-32 of letters, digits, _ . -")

    async def _from_cache(self) -> Client | None:
        """Reuse a remembered token: no password needed while it is valid."""
        assert self.username
        cached = self.profile.cached_login(self.route, self._cached_as)
        if cached is None or cached.node is None:
            return None
        try:
            node = NodeAddress.from_wire(cached.node)
        except (KeyError, TypeError, ValueError):
            return None
        client = self._make_client(self.username, token=cached.token, node=node)
        try:
            await client.connect()
        except (CimError, OSError, httpx.HTTPError) as exc:
            log.info("cached token not usable: %s", exc)
            await client.close()
            if getattr(exc, "code", "") in _TOKEN_GONE:
                self.profile.forget_token(self.route, self._cached_as)
            return None
        return client

    async def _with_password(self) -> Client | None:
        assert self.username
        for _ in range(3):
            if self.password is None:
                self.password = await self._session.prompt_async(
                    f"password for {self.username}: ", is_password=True
                )
            client = self._make_client(self.username, self.password)
            try:
                if await self._login_or_register(client):
                    await client.connect()  # with the login just made: no second /login
                    return client
            except BaseException:
                await client.close()
                raise
            await client.close()
            if self._password_from_env:
                return None
            self.password = None
        say("error", "giving up after three tries")
        return None

    async def _login_or_register(self, client: Client) -> bool:
        """Log in; on ``bad_credentials`` offer to register. False: try another password."""
        try:
            answer = await client.login()
        except CimApiError as exc:
            if exc.code != "bad_credentials":
                raise
            answer = await self._offer_register(client)
            if answer is None:
                return False
        self.profile.save_login(
            self.route,
            self._cached_as,
            CachedLogin(answer["token"], int(answer["expires_at"]), answer["node"]),
        )
        return True

    async def _offer_register(self, client: Client) -> dict[str, Any] | None:
        question = f"login refused: is {client.username!r} new here? register it now? [y/N] "
        reply = (await self._session.prompt_async(question)).strip().lower()
        if reply not in ("y", "yes"):
            say("error", "wrong username or password")
            return None
        try:
            await client.register()
        except CimApiError as exc:
            if exc.code == "username_taken":
                say("error", f"{client.username!r} is taken by someone else, or the password is wrong")
                return None
            if exc.code == "invalid_request":
                say("error", f"cannot register: {exc.detail} (a password has 8-128 characters)")
                return None
            raise
        say("good", f"registered {client.username!r}")
        return await client.login()
