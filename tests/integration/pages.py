"""A browser without a screen: follows the auth service's pages by their forms.

Cookies are kept as a browser keeps them; every form is read from the page,
hidden fields (the CSRF token among them) included, and posted as the browser
would post it. Redirects are followed within the auth service only, so the
answer meant for a client's redirect URI is caught, not fetched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import unescape
from urllib.parse import urljoin, urlsplit

import requests

_FORM = re.compile(r'<form method="post" action="([^"]*)">(.*?)</form>', re.S)
_INPUT = re.compile(r'<input[^>]*name="([^"]*)"[^>]*value="([^"]*)"')
_BUTTON = re.compile(r'<button[^>]*name="([^"]*)" value="([^"]*)"')


@dataclass
class Form:
    action: str
    fields: dict[str, str]
    buttons: list[tuple[str, str]]


@dataclass
class PageBrowser:
    base_url: str
    session: requests.Session = field(default_factory=requests.Session)
    last: requests.Response | None = None

    def get(self, url: str) -> requests.Response:
        return self._follow(
            self.session.get(urljoin(self.base_url, url), allow_redirects=False, timeout=30)
        )

    def submit(
        self, form: Form, *, button: tuple[str, str] | None = None, **values: str
    ) -> requests.Response:
        data = {**form.fields, **values}
        if button is not None:
            data[button[0]] = button[1]
        response = self.session.post(
            urljoin(self.base_url, form.action), data=data, allow_redirects=False, timeout=30
        )
        return self._follow(response)

    def forms(self) -> list[Form]:
        assert self.last is not None
        found = []
        for action, inner in _FORM.findall(self.last.text):
            fields = {unescape(name): unescape(value) for name, value in _INPUT.findall(inner)}
            buttons = [(unescape(n), unescape(v)) for n, v in _BUTTON.findall(inner)]
            found.append(Form(unescape(action), fields, buttons))
        return found

    def form(self) -> Form:
        (only,) = self.forms()
        return only

    def sign_in(self, email: str, password: str) -> requests.Response:
        """On the sign-in page now: fill it in and send it."""
        return self.submit(self.form(), email=email, password=password)

    def _follow(self, response: requests.Response) -> requests.Response:
        """Follow redirects that stay on the auth service; stop at any other."""
        while response.is_redirect:
            target = urljoin(response.url, response.headers["location"])
            if urlsplit(target).netloc != urlsplit(self.base_url).netloc:
                break
            response = self.session.get(target, allow_redirects=False, timeout=30)
        self.last = response
        return response
