"""The dev issuer's HTML: the login page and message pages.

Every value that came from a request is HTML-escaped. Element ids are stable
so browser tests can drive the login page:

``quick-pick``
    The form of one-click demo users; its buttons are ``pick-<key>``
    (``pick-alice``, ``pick-bob``, ``pick-dana``, ``pick-sam``).
``sign-in-form``
    The form for typing a user, with inputs ``sub``, ``email``, ``name``,
    ``groups`` (comma separated) and the checkbox ``mfa``; ``sign-in``
    submits it and ``cancel`` refuses the sign-in (``error=access_denied``).
``error``
    Why the typed user was refused (present only then).
``title``, ``message``
    A message page's heading and text (errors, "Signed out").

Both forms POST to ``/authorize`` with a hidden ``request_id`` (the pending
authorization request, kept server-side); a quick pick sends ``pick=<key>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gatehouse.dev.idp_flows import DemoUser, LoginPrompt

# default-src 'none' forbids scripts; no form-action: browsers apply it to the
# redirect after a POST, which must go to the relying party.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
fieldset { margin-bottom: 1.5rem; } label { display: block; margin: .5rem 0 .2rem; }
input[type=text], input[type=email] { width: 100%; box-sizing: border-box; padding: .3rem; }
button { margin: .3rem .3rem .3rem 0; padding: .4rem .8rem; }
#error { color: #a00; } small { color: #555; }
"""


def login_page(prompt: LoginPrompt, demo_users: Iterable[DemoUser], issuer: str) -> str:
    """The login page for a pending authorization request."""
    request_id = _hidden("request_id", prompt.request_id)
    picks = "\n".join(_pick(user) for user in demo_users)
    form = prompt.form
    error = f'<p id="error" role="alert">{escape(prompt.error)}</p>' if prompt.error else ""
    body = f"""
<h1 id="title">Dev issuer sign-in</h1>
<p>Signing in to <strong>{escape(prompt.client_id)}</strong> at {escape(issuer)}.
No passwords: choose who you are.</p>
<form id="quick-pick" method="post" action="/authorize">
<fieldset><legend>Demo users</legend>
{request_id}
{picks}
</fieldset>
</form>
<form id="sign-in-form" method="post" action="/authorize">
<fieldset><legend>Someone else</legend>
{error}
{request_id}
<label for="sub">Subject (sub)</label>
<input type="text" id="sub" name="sub" value="{escape(form.sub)}" required>
<label for="email">Email</label>
<input type="email" id="email" name="email" value="{escape(form.email)}">
<label for="name">Name</label>
<input type="text" id="name" name="name" value="{escape(form.name)}">
<label for="groups">Groups (comma separated)</label>
<input type="text" id="groups" name="groups" value="{escape(form.groups)}">
<label><input type="checkbox" id="mfa" name="mfa"{" checked" if form.mfa else ""}>
 Signed in with MFA</label>
<button type="submit" id="sign-in">Sign in</button>
<button type="submit" id="cancel" name="cancel" value="1" formnovalidate>Cancel</button>
</fieldset>
</form>
"""
    return _document("Sign in", body)


def message_page(title: str, message: str) -> str:
    """A page that only says something (an error, or that the user signed out)."""
    body = f'<h1 id="title">{escape(title)}</h1>\n<p id="message">{escape(message)}</p>\n'
    return _document(title, body)


def _pick(user: DemoUser) -> str:
    mfa = ", MFA" if user.mfa else ""
    return (
        f'<p><button type="submit" id="pick-{escape(user.key)}" name="pick"'
        f' value="{escape(user.key)}">{escape(user.name)}</button>'
        f" <small>{escape(user.email)} [{escape(', '.join(user.groups))}{mfa}]:"
        f" {escape(user.about)}</small></p>"
    )


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)} - Gatehouse dev issuer</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>{body}</body>\n</html>\n"
    )
