"""Where the FCM bearer token comes from: FCM_ACCESS_TOKEN as given, or minted from the service-account
file named by GOOGLE_APPLICATION_CREDENTIALS (google-auth: a signed JWT posted to the file's token_uri).

The minted token is cached and refreshed under a lock, shortly before it expires (google-auth's
`valid` already subtracts a ~4 minute margin) and once when FCM answers 401. Neither the token nor
the private key is ever logged or put into an error message.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Protocol

import requests

FCM_SCOPES = ("https://www.googleapis.com/auth/firebase.messaging",)
_REQUIRED_FIELDS = ("client_email", "private_key", "token_uri")


class ServiceAccountFileError(ValueError):
    """GOOGLE_APPLICATION_CREDENTIALS names a file that is not a usable service-account key."""


class TokenError(RuntimeError):
    """No access token could be minted; `retryable` when the token endpoint was unreachable or 5xx."""

    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class TokenSource(Protocol):
    def token(self) -> str: ...

    def invalidate(self, used: str) -> bool:
        """FCM rejected `used` (401): mint a new token; False when this source cannot refresh."""
        ...


class StaticToken:
    """FCM_ACCESS_TOKEN: minted elsewhere; crmflow cannot refresh it."""

    def __init__(self, access_token: str):
        self._token = access_token

    def token(self) -> str:
        return self._token

    def invalidate(self, used: str) -> bool:
        return False

    def __repr__(self) -> str:
        return "StaticToken(***)"


def read_service_account(path: str | Path) -> dict[str, Any]:
    """The parsed key file, checked for the fields google-auth needs; errors name the file and field
    but never quote the file's content."""
    path = Path(path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ServiceAccountFileError(f"GOOGLE_APPLICATION_CREDENTIALS={path}: cannot read "
                                      f"({type(exc).__name__})") from None
    except ValueError:
        raise ServiceAccountFileError(f"GOOGLE_APPLICATION_CREDENTIALS={path}: not valid JSON") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        kind = info.get("type") if isinstance(info, dict) else type(info).__name__
        raise ServiceAccountFileError(f"GOOGLE_APPLICATION_CREDENTIALS={path}: field 'type' is {kind!r}, "
                                      "need 'service_account' (a service-account key file)")
    for field in _REQUIRED_FIELDS:
        if not isinstance(info.get(field), str) or not info[field]:
            raise ServiceAccountFileError(f"GOOGLE_APPLICATION_CREDENTIALS={path}: field {field!r} missing")
    return info


def service_account_project_id(path: str | Path) -> str | None:
    project = read_service_account(path).get("project_id")
    return project if isinstance(project, str) and project else None


class ServiceAccountToken:
    """OAuth access token minted from a service-account key file, shared by all sender threads."""

    def __init__(self, path: str | Path, timeout_s: float = 30.0, session: requests.Session | None = None):
        # Imported here so crmflow imports without google-auth when only FCM_ACCESS_TOKEN is used.
        import google.auth.transport.requests
        from google.oauth2 import service_account

        info = read_service_account(path)
        self.path = Path(path)
        self.project_id: str | None = info.get("project_id") or None
        try:
            self._credentials = service_account.Credentials.from_service_account_file(
                str(path), scopes=list(FCM_SCOPES))
        except (ValueError, TypeError) as exc:  # e.g. a private_key that is not a PEM RSA key
            raise ServiceAccountFileError(f"GOOGLE_APPLICATION_CREDENTIALS={self.path}: unusable key "
                                          f"({type(exc).__name__})") from None
        self._request = google.auth.transport.requests.Request(session or requests.Session())
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self.refresh_count = 0

    def _refresh_locked(self) -> None:
        from google.auth import exceptions

        def request(*args: Any, **kwargs: Any) -> Any:
            kwargs["timeout"] = self._timeout_s  # google-auth's default is 120 s
            return self._request(*args, **kwargs)

        try:
            self._credentials.refresh(request)
        except exceptions.RefreshError as exc:
            # args[0] is "<error>: <error_description>" from the token endpoint: no secrets in it.
            reason = str(exc.args[0])[:200] if exc.args else type(exc).__name__
            raise TokenError(f"fcm auth: token endpoint refused the service account: {reason}",
                             retryable=bool(getattr(exc, "retryable", False))) from None
        except exceptions.TransportError as exc:
            raise TokenError(f"fcm auth: token endpoint unreachable ({type(exc.__cause__ or exc).__name__})",
                             retryable=True) from None
        self.refresh_count += 1

    def token(self) -> str:
        with self._lock:
            if not self._credentials.valid:  # no token yet, or it expires within the margin
                self._refresh_locked()
            return str(self._credentials.token)

    def invalidate(self, used: str) -> bool:
        with self._lock:
            # Only the first thread to see a 401 for this token refreshes; the others reuse its result.
            if self._credentials.token == used or not self._credentials.valid:
                self._refresh_locked()
        return True

    def __repr__(self) -> str:
        return f"ServiceAccountToken({self.path})"
