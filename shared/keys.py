"""Redis key names. Every key starts with the settings' prefix (default ``cim:``).

One user's keys carry the tag of the user's bucket, ``{u:<crc32(casefold(u)) % 256>}``
(``{u}`` in the table stands for ``{u:<bucket>}:<u>``), so they share a Redis Cluster slot
and one Lua script can touch them together (seq, inbox, idempotency); case variants of a
name share the bucket. The address's auth-gate keys share ``{a:<address>}``.

The global views (who is online, who is registered, a node's sessions) are one key per bucket
(``<b>`` in the table: 0 to ``BUCKETS - 1``) in the slot of that bucket's users, so the
session and send scripts stay single-slot; ``shared.views`` reads a view with one pipeline
over its ``BUCKETS`` keys (grouped by node on a cluster).

| key                                   | type   | holds                                        |
|---------------------------------------|--------|----------------------------------------------|
| user:{u}                              | hash   | ``pw`` (scrypt hash), ``created`` (ms)       |
| seq:{u}                               | string | last seq assigned to u (never expires)       |
| inbox:{u}                             | stream | id ``<seq>-0``, fields ``m`` (msgpack msg    |
|                                       |        | without seq/ts/to), ``ts`` (ms it entered)    |
| ack:{u}                               | string | highest seq any device of u acked            |
| ack:{u}:<device>                      | string | highest seq that device acked (cumulative)   |
| session:{u}                           | hash   | a field per online device: ``<node> <conn>    |
|                                       |        | <since ms>`` (``lua/_session.lua``)           |
| reads:{u}                             | hash   | peer -> ts u read the p2p conversation up to |
| typing:{u}:<to>                       | string | set for 1 s after u's typing to ``to``        |
| msg:{<id>}                            | string | msgpack ref: kind, from, to or group, ts:     |
|                                       |        | what an edit or recall looks up               |
| edits:{a|b} / edits:{#g}              | hash   | message id -> msgpack ``{body, edited_ts}``   |
|                                       |        | or ``{recalled: true}`` (history applies it) |
| group-reads:{#g}                      | hash   | member -> ts it read the group up to          |
| idem:{u}:<scope>                      | hash   | ``seq``, ``ts``, ``id``, ``status`` of the first |
|                                       |        | answer of an idempotent store (a string for   |
|                                       |        | delayed sends and push to ``"*"``)            |
| ratelimit:{u}                         | hash   | token bucket ``tokens``, ``ts``              |
| login-failures:{a:<address>}:<u>      | string | tries of u's password from that address     |
|                                       |        | since the last right one (expires: back-off) |
| auth-rate:{a:<address>}               | hash   | token bucket of registrations and logins     |
| groups:{u}                            | set    | names of u's groups                          |
| group:{g}                             | hash   | ``creator``, ``created``, ``owner``          |
| members:{g}                           | set    | usernames                                    |
| joined:{g}                            | hash   | member -> when it joined (ms): its history   |
|                                       |        | of the group starts there                    |
| history:{a|b} / history:{#g}          | stream | auto ids, fields ``m`` (msgpack msg), and     |
|                                       |        | ``ts`` for p2p ones (written by send.lua)     |
| node-sessions:<node>:{u:<b>}          | set    | ``<user>/<device>`` of bucket b with a       |
|                                       |        | session on the node (the sweep's index)      |
| online:{u:<b>}                        | zset   | online usernames of bucket b, score 0 (lex)  |
| users:{u:<b>}                         | zset   | registered usernames of bucket b, score 0    |
| usernames:{u:<b>}                     | hash   | lower-case username -> the username (case    |
|                                       |        | variants share b: uniqueness stays atomic)   |
| group-names                           | hash   | lower-case group name -> the group name      |
| delayed:{d}                           | zset   | msgpack jobs scored by due time (ms)          |
| revoked:{u}:<jti>                     | string | "1" until the token would have expired        |
| token-epoch:{u}                       | hash   | ``at`` (ms): u's tokens issued before are     |
|                                       |        | revoked, but jti ``keep``; expires with them  |
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

__all__ = ["BUCKETS", "Keys", "bucket", "bucket_tag", "user_tag"]

BUCKETS = 256
"""User buckets: a user's keys share the slot of ``{u:<bucket>}`` (issue 11). 256, not more: a
read of a global view is a pipeline of ``BUCKETS`` commands, whose client-side cost grows with
them (one Redis, loopback, loaded machine: 1024 ``ZCARD`` 24.6 ms, 256 5.6 ms, 64 2.4 ms);
256 slots of user data still spread over up to 256 masters."""


@functools.lru_cache(maxsize=1 << 16)
def bucket(u: str) -> int:
    """The user's bucket: case variants of a name share it (case-insensitive uniqueness)."""
    return zlib.crc32(u.casefold().encode()) % BUCKETS


def bucket_tag(b: int) -> str:
    """The hash tag of bucket ``b``'s keys, e.g. ``{u:0123}``."""
    return f"{{u:{b:04d}}}"


@functools.lru_cache(maxsize=1 << 16)
def user_tag(u: str) -> str:
    """The hash tag of all of ``u``'s keys (its bucket's). Both cached: a p2p send builds a
    dozen keys of its two users, and the crc32 of a casefolded name costs more than a lookup."""
    return bucket_tag(bucket(u))


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder bound to one prefix; build it once from settings."""

    prefix: str = "cim:"

    def user(self, u: str) -> str:
        return f"{self.prefix}user:{user_tag(u)}:{u}"

    def seq(self, u: str) -> str:
        return f"{self.prefix}seq:{user_tag(u)}:{u}"

    def inbox(self, u: str) -> str:
        return f"{self.prefix}inbox:{user_tag(u)}:{u}"

    def ack(self, u: str) -> str:
        return f"{self.prefix}ack:{user_tag(u)}:{u}"

    def device_ack(self, u: str, device: str) -> str:
        return f"{self.prefix}ack:{user_tag(u)}:{u}:{device}"

    def reads(self, u: str) -> str:
        return f"{self.prefix}reads:{user_tag(u)}:{u}"

    def typing(self, u: str, to: str) -> str:
        return f"{self.prefix}typing:{user_tag(u)}:{u}:{to}"

    def message_ref(self, msg_id: str) -> str:
        return f"{self.prefix}msg:{{{msg_id}}}"

    def edits(self, history_key: str) -> str:
        """The edits of the conversation whose history stream is ``history_key`` (same slot)."""
        return history_key.replace(f"{self.prefix}history:", f"{self.prefix}edits:", 1)

    def group_reads(self, g: str) -> str:
        return f"{self.prefix}group-reads:{{#{g}}}"

    def session(self, u: str) -> str:
        return f"{self.prefix}session:{user_tag(u)}:{u}"

    def idem(self, u: str, scope: str) -> str:
        return f"{self.prefix}idem:{user_tag(u)}:{u}:{scope}"

    def ratelimit(self, u: str) -> str:
        return f"{self.prefix}ratelimit:{user_tag(u)}:{u}"

    def login_failures(self, u: str, address: str) -> str:
        """In the slot of the address, with its ``auth_rate`` (one auth-gate script)."""
        return f"{self.prefix}login-failures:{{a:{address}}}:{u}"

    def auth_rate(self, address: str) -> str:
        return f"{self.prefix}auth-rate:{{a:{address}}}"

    def user_groups(self, u: str) -> str:
        return f"{self.prefix}groups:{user_tag(u)}:{u}"

    def group(self, g: str) -> str:
        return f"{self.prefix}group:{{#{g}}}"

    def members(self, g: str) -> str:
        return f"{self.prefix}members:{{#{g}}}"

    def joined(self, g: str) -> str:
        return f"{self.prefix}joined:{{#{g}}}"

    def dm_history(self, a: str, b: str) -> str:
        lo, hi = sorted((a, b))
        return f"{self.prefix}history:{{{lo}|{hi}}}"

    def group_history(self, g: str) -> str:
        return f"{self.prefix}history:{{#{g}}}"

    def node_sessions(self, node_id: str, b: int) -> str:
        """The node's sessions of users of bucket ``b`` (``bucket(user)``)."""
        return f"{self.prefix}node-sessions:{node_id}:{bucket_tag(b)}"

    def online(self, b: int) -> str:
        """The online users of bucket ``b``."""
        return f"{self.prefix}online:{bucket_tag(b)}"

    def users(self, b: int) -> str:
        """The registered users of bucket ``b``."""
        return f"{self.prefix}users:{bucket_tag(b)}"

    def usernames(self, b: int) -> str:
        """Lower-case name -> name, of the users of bucket ``b``."""
        return f"{self.prefix}usernames:{bucket_tag(b)}"

    @property
    def group_names(self) -> str:
        return f"{self.prefix}group-names"

    @property
    def delayed(self) -> str:
        return f"{self.prefix}delayed:{{d}}"

    def revoked(self, u: str, jti: str) -> str:
        """In the slot of the token's user (the token names it)."""
        return f"{self.prefix}revoked:{user_tag(u)}:{jti}"

    def token_epoch(self, u: str) -> str:
        return f"{self.prefix}token-epoch:{user_tag(u)}:{u}"
