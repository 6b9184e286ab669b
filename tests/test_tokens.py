"""Token verification: concurrent first requests with one token run argon2 once (single flight).

The hasher is argon2-cffi's real ``PasswordHasher`` with a counter around ``verify``: the hashes are the
ones ``create_token`` stores, and the verdicts are argon2's own. Its ``verify`` also lingers a moment
after answering, so every thread surely arrives while the first verification is still running; without
single flight each of them would verify again.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from argon2 import PasswordHasher

from civicsoc.records import Role
from civicsoc.store import Store
from civicsoc.tokens import AuthenticationFailed, Authenticator, IssuedToken, Principal, create_tenant, create_token

THREADS = 8
LINGER_S = 0.5


class CountingHasher(PasswordHasher):
    """argon2's real verification, counted per stored hash."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.calls[str(hash)] += 1
        try:
            return super().verify(hash, password)
        finally:
            time.sleep(LINGER_S)  # keep the window open: the other threads arrive meanwhile


@pytest.fixture
def issued(sqlite_store: Store) -> list[IssuedToken]:
    create_tenant(sqlite_store, "agency-a", "Agency A", "test")
    create_tenant(sqlite_store, "agency-b", "Agency B", "test")
    return [create_token(sqlite_store, tenant=tenant, role=Role.analyst, name=f"analyst {tenant}", actor="test")
            for tenant in ("agency-a", "agency-b")]


def at_once(calls: list[Any]) -> list[Principal | Exception]:
    """Run every call in its own thread, released together by a barrier; results (or exceptions) in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Any) -> Principal | Exception:
        barrier.wait()
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_concurrent_first_requests_verify_each_token_once(sqlite_store: Store, issued: list[IssuedToken]) -> None:
    hasher = CountingHasher()
    authenticator = Authenticator(sqlite_store, hasher=hasher)
    calls = [lambda secret=token.secret: authenticator.authenticate(secret)
             for token in issued for _ in range(THREADS // 2)]
    results = at_once(calls)

    expected = [Principal(token.token.id, token.token.name, Role.analyst, frozenset({token.token.tenant}))
                for token in issued for _ in range(THREADS // 2)]
    assert results == expected
    assert hasher.calls == {token.token.secret_hash: 1 for token in issued}
    authenticator.authenticate(issued[0].secret)  # remembered: no further verification
    assert hasher.calls[issued[0].token.secret_hash] == 1


def test_concurrent_wrong_secrets_all_fail_on_one_verification(sqlite_store: Store,
                                                                issued: list[IssuedToken]) -> None:
    hasher = CountingHasher()
    authenticator = Authenticator(sqlite_store, hasher=hasher)
    token = issued[0]
    wrong = f"cs_{token.token.id}_{'x' * 43}"
    assert wrong != token.secret
    results = at_once([lambda: authenticator.authenticate(wrong) for _ in range(THREADS)])

    assert all(isinstance(result, AuthenticationFailed) and "wrong secret" in str(result) for result in results)
    assert hasher.calls[token.token.secret_hash] == 1
    # a failure is not remembered as a success: the right secret is verified afresh and accepted
    assert authenticator.authenticate(token.secret).token_id == token.token.id
    assert hasher.calls[token.token.secret_hash] == 2
