"""Bearer tokens for the loads: minted from the auth service (a user's by the password
grant, fresh client-credentials ones), and a list of them a load sends in turn."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TypedDict

import httpx

from bench.stack import Accounts
from portcullis_shared.verifier import VERIFIED_CACHE_SIZE

NEW_TOKENS = VERIFIED_CACHE_SIZE * 6 // 5
"""Tokens a load sends in turn when each request must bring one the posts service has not
verified yet: more than its verified-token cache keeps."""


@dataclass
class Tokens:
    """Bearer tokens a load sends one per request, in turn. Each run goes on where the
    last one stopped, so a token comes back only after all the others: with more tokens
    than the verifier keeps (first in, first out), every request has its signature and
    claims checked, none is answered from the cache."""

    values: list[str]
    sent: int = 0


class TokenAnswer(TypedDict):
    """The token endpoint's answer to a password grant, as far as the bench reads it."""

    access_token: str
    refresh_token: str


@dataclass(frozen=True)
class TokenSource:
    """Tokens from the auth service at `auth_url`, for the accounts the stack set up."""

    auth_url: str
    accounts: Accounts

    def user_token(self, scope: str = "read-posts write-posts") -> TokenAnswer:
        answer = httpx.post(
            f"{self.auth_url}/oauth/token",
            auth=self.accounts.password_client,
            timeout=30,
            data={
                "grant_type": "password",
                "username": "bench@example.com",
                "password": self.accounts.password,
                "scope": scope,
            },
        )
        answer.raise_for_status()
        token: TokenAnswer = answer.json()
        return token

    def new_tokens(self) -> list[str]:
        """NEW_TOKENS client-credentials tokens that read posts, fresh from the auth service
        (each lives ACCESS_TOKEN_TTL, 15 minutes: minted just before the runs that use them)."""
        return asyncio.run(self._mint(NEW_TOKENS))

    async def _mint(self, count: int) -> list[str]:
        tokens: list[str] = []
        async with httpx.AsyncClient(auth=self.accounts.machine, timeout=30) as client:

            async def mint_until_enough() -> None:
                while len(tokens) < count:
                    answer = await client.post(
                        f"{self.auth_url}/oauth/token",
                        data={"grant_type": "client_credentials", "scope": "read-posts"},
                    )
                    answer.raise_for_status()
                    tokens.append(answer.json()["access_token"])

            await asyncio.gather(*(mint_until_enough() for _ in range(16)))
        return tokens[:count]
