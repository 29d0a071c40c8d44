"""FCM with a service-account file (GOOGLE_APPLICATION_CREDENTIALS): google-auth mints the token from a
local token endpoint (pytest-httpserver, 127.0.0.1) that verifies the signed JWT-bearer grant; pushes
go to the local mock FCM. Covers minting, caching and early refresh, refresh on 401, token-endpoint
failures, the factory's choice of credential, and `crmflow channels check`."""

from __future__ import annotations

import base64
import json
import logging
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from helpers_channels import message
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from connectors.channels.config import FcmConfig, load_channels_config
from connectors.channels.factory import build_channels, plan_channels
from connectors.channels.fcm import FcmChannel
from connectors.channels.fcm_auth import FCM_SCOPES, ServiceAccountFileError, ServiceAccountToken, StaticToken
from connectors.channels.mock_server import Action, MockProvider
from connectors.channels.outbox import OutboxChannel
from orchestration.cli import app

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_EMAIL = "crmflow-push@sa-project.iam.gserviceaccount.com"
POLICY = dict(backoff_base_s=0.0, timeout_s=2.0, max_concurrency=4)
UNAUTHENTICATED = {"error": {"code": 401, "status": "UNAUTHENTICATED",
                             "message": "Request had invalid authentication credentials."}}


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class TokenEndpoint:
    """A Google-style OAuth token endpoint: verifies the RS256 assertion, hands out numbered tokens."""

    def __init__(self, server: HTTPServer, public_key: rsa.RSAPublicKey, expires_in: int = 3600):
        self.server, self.public_key, self.expires_in = server, public_key, expires_in
        self.claims: list[dict[str, Any]] = []
        self.fail_with: tuple[int, dict[str, str]] | None = None
        self._lock = threading.Lock()
        server.expect_request("/token", method="POST").respond_with_handler(self.handle)

    @property
    def uri(self) -> str:
        return self.server.url_for("/token")

    def handle(self, request: Request) -> Response:
        form = parse_qs(request.get_data(as_text=True))
        assert form["grant_type"] == [GRANT], form.get("grant_type")
        header, payload, signature = form["assertion"][0].split(".")
        assert json.loads(_b64decode(header))["alg"] == "RS256"
        self.public_key.verify(_b64decode(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(),
                               hashes.SHA256())  # raises InvalidSignature -> 500 -> test fails
        claims = json.loads(_b64decode(payload))
        # google-auth signs aud as Google's token endpoint whatever token_uri says, as Google expects
        assert claims["iss"] == CLIENT_EMAIL and claims["aud"].endswith("/token")
        assert claims["scope"] == " ".join(FCM_SCOPES)
        if self.fail_with:
            status, body = self.fail_with
            return Response(json.dumps(body), status=status, content_type="application/json")
        with self._lock:
            self.claims.append(claims)
            token = f"ya29.minted-{len(self.claims)}"
        return Response(json.dumps({"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}),
                        content_type="application/json")


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def token_server():
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def fcm_server():
    with MockProvider() as provider:
        yield provider


def write_key_file(path: Path, key: rsa.RSAPrivateKey, token_uri: str, project_id: str | None = "sa-project",
                   **overrides: Any) -> Path:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {"type": "service_account", "project_id": project_id, "private_key_id": "k1", "private_key": pem,
            "client_email": CLIENT_EMAIL, "client_id": "1", "token_uri": token_uri, **overrides}
    path.write_text(json.dumps({k: v for k, v in info.items() if v is not None}))
    return path


def private_key_marker(key: rsa.RSAPrivateKey) -> str:
    """A line from the middle of the PEM: must never show up in logs or output."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem.splitlines()[5]


def auth_headers(provider: MockProvider) -> list[str]:
    return [r.headers.get("Authorization", "") for r in provider.requests]


def test_service_account_token_is_minted_cached_and_sent(tmp_path, rsa_key, token_server, fcm_server, caplog):
    caplog.set_level(logging.DEBUG)
    endpoint = TokenEndpoint(token_server, rsa_key.public_key())
    key_file = write_key_file(tmp_path / "sa.json", rsa_key, endpoint.uri)
    environ = {"GOOGLE_APPLICATION_CREDENTIALS": str(key_file), "FCM_API_BASE": fcm_server.url}
    channel = build_channels(load_channels_config_push(tmp_path), "prod", tmp_path, environ=environ)["push"]
    assert isinstance(channel, FcmChannel) and isinstance(channel.tokens, ServiceAccountToken)

    results = channel.send_batch([message(i, "push") for i in range(6)]) + channel.send_batch([message(9, "push")])
    assert [r.status for r in results] == ["sent"] * 7
    assert len(endpoint.claims) == 1  # six concurrent sends and a later batch share one minted token
    assert set(auth_headers(fcm_server)) == {"Bearer ya29.minted-1"}
    # the project comes from the key file when FCM_PROJECT_ID is unset
    assert {r.path for r in fcm_server.requests} == {"/v1/projects/sa-project/messages:send"}
    assert "ya29.minted-1" not in caplog.text and private_key_marker(rsa_key) not in caplog.text
    assert "ya29" not in repr(channel.tokens)


def test_token_inside_the_expiry_margin_is_refreshed_before_use(tmp_path, rsa_key, token_server, fcm_server):
    # 60 s lifetime is inside google-auth's ~4 minute margin: every use mints a fresh token first.
    endpoint = TokenEndpoint(token_server, rsa_key.public_key(), expires_in=60)
    tokens = ServiceAccountToken(write_key_file(tmp_path / "sa.json", rsa_key, endpoint.uri), timeout_s=2)
    channel = FcmChannel(FcmConfig(provider="fcm", **POLICY), "p1", tokens, api_base=fcm_server.url)
    for i in range(3):
        assert channel.send_batch([message(i, "push")])[0].status == "sent"
    assert auth_headers(fcm_server) == [f"Bearer ya29.minted-{i}" for i in (1, 2, 3)]


def test_401_refreshes_the_token_once_and_resends(tmp_path, rsa_key, token_server, fcm_server):
    endpoint = TokenEndpoint(token_server, rsa_key.public_key())
    tokens = ServiceAccountToken(write_key_file(tmp_path / "sa.json", rsa_key, endpoint.uri), timeout_s=2)
    channel = FcmChannel(FcmConfig(provider="fcm", **POLICY), "p1", tokens, api_base=fcm_server.url)
    fcm_server.push(Action.error(401, UNAUTHENTICATED))
    result = channel.send_batch([message(1, "push")])[0]
    assert result.status == "sent" and result.attempts == 2 and not result.address_dead
    assert auth_headers(fcm_server) == ["Bearer ya29.minted-1", "Bearer ya29.minted-2"]
    assert fcm_server.accepted["j1:s1:u1"] == 1

    # a second 401 right after the refresh is final: one refresh per message, no loop
    fcm_server.push(Action.error(401, UNAUTHENTICATED), Action.error(401, UNAUTHENTICATED))
    result = channel.send_batch([message(2, "push")])[0]
    assert result.status == "failed" and result.attempts == 2 and "UNAUTHENTICATED" in (result.error or "")
    assert len(endpoint.claims) == 3


def test_401_with_a_static_token_fails_without_resend(fcm_server):
    channel = FcmChannel(FcmConfig(provider="fcm", **POLICY), "p1", "ya29.static", api_base=fcm_server.url)
    assert isinstance(channel.tokens, StaticToken)
    fcm_server.push(Action.error(401, UNAUTHENTICATED))
    result = channel.send_batch([message(1, "push")])[0]
    assert result.status == "failed" and result.attempts == 1 and len(fcm_server.requests) == 1


def test_token_endpoint_refusal_fails_the_message_without_calling_fcm(tmp_path, rsa_key, token_server, fcm_server):
    endpoint = TokenEndpoint(token_server, rsa_key.public_key())
    endpoint.fail_with = (400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    tokens = ServiceAccountToken(write_key_file(tmp_path / "sa.json", rsa_key, endpoint.uri), timeout_s=2)
    channel = FcmChannel(FcmConfig(provider="fcm", **POLICY), "p1", tokens, api_base=fcm_server.url)
    result = channel.send_batch([message(1, "push")])[0]
    assert result.status == "failed" and "invalid_grant" in (result.error or "")
    assert not fcm_server.requests
    assert private_key_marker(rsa_key) not in (result.error or "")


def load_channels_config_push(tmp_path: Path):
    path = tmp_path / "channels.yaml"
    path.write_text("environments:\n  prod:\n    push: {provider: fcm, backoff_base_s: 0, timeout_s: 2}\n")
    return load_channels_config(path)


def push_plan(config, environ):
    return next(p for p in plan_channels(config, "prod", environ) if p.channel == "push")


def test_factory_picks_the_credential_and_falls_back_to_outbox(tmp_path, rsa_key, caplog):
    config = load_channels_config_push(tmp_path)
    key_file = write_key_file(tmp_path / "sa.json", rsa_key, "http://127.0.0.1:9/token")
    sa = {"GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}

    channel = build_channels(config, "prod", tmp_path, environ=sa)["push"]
    assert isinstance(channel.tokens, ServiceAccountToken) and "/projects/sa-project/" in channel.url
    channel = build_channels(config, "prod", tmp_path, environ={**sa, "FCM_PROJECT_ID": "override"})["push"]
    assert "/projects/override/" in channel.url
    # an explicit FCM_ACCESS_TOKEN wins over the ambient service account
    channel = build_channels(config, "prod", tmp_path, environ={**sa, "FCM_ACCESS_TOKEN": "ya29.x"})["push"]
    assert isinstance(channel.tokens, StaticToken) and "/projects/sa-project/" in channel.url

    # neither credential: outbox, as before, naming both alternatives
    assert isinstance(build_channels(config, "prod", tmp_path, environ={"FCM_PROJECT_ID": "p"})["push"],
                      OutboxChannel)
    assert "FCM_ACCESS_TOKEN|GOOGLE_APPLICATION_CREDENTIALS" in caplog.text
    plan = push_plan(config, {})
    assert plan.effective == "outbox" and plan.missing == ("FCM_PROJECT_ID",
                                                           "FCM_ACCESS_TOKEN|GOOGLE_APPLICATION_CREDENTIALS")
    # a key file without project_id needs FCM_PROJECT_ID
    bare = write_key_file(tmp_path / "bare.json", rsa_key, "http://127.0.0.1:9/token", project_id=None)
    plan = push_plan(config, {"GOOGLE_APPLICATION_CREDENTIALS": str(bare)})
    assert plan.missing == ("FCM_PROJECT_ID",)


@pytest.mark.parametrize(("content", "field"), [
    ("{not json", "not valid JSON"),
    (json.dumps({"type": "authorized_user", "refresh_token": "r"}), "'type' is 'authorized_user'"),
    (json.dumps({"type": "service_account", "client_email": "a@b", "token_uri": "http://x"}), "'private_key'"),
])
def test_bad_key_file_is_a_clear_error(tmp_path, content, field):
    path = tmp_path / "sa.json"
    path.write_text(content)
    with pytest.raises(ServiceAccountFileError, match=field) as info:
        plan_channels(load_channels_config_push(tmp_path), "prod", {"GOOGLE_APPLICATION_CREDENTIALS": str(path)})
    assert str(path) in str(info.value) and '"r"' not in str(info.value)
    with pytest.raises(ServiceAccountFileError, match="cannot read"):
        ServiceAccountToken(tmp_path / "missing.json")


def test_channels_check_with_a_service_account(tmp_path, rsa_key, token_server, fcm_server, monkeypatch):
    endpoint = TokenEndpoint(token_server, rsa_key.public_key())
    key_file = write_key_file(tmp_path / "sa.json", rsa_key, endpoint.uri)
    load_channels_config_push(tmp_path)
    for name in ("FCM_ACCESS_TOKEN", "FCM_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    monkeypatch.setenv("FCM_API_BASE", fcm_server.url)
    monkeypatch.setenv("CRMFLOW_OUTBOX_DIR", str(tmp_path / "outbox"))
    args = ["channels", "check", "--env", "prod", "--config", str(tmp_path / "channels.yaml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "push     fcm: OK [token from service account GOOGLE_APPLICATION_CREDENTIALS]" in result.output
    assert auth_headers(fcm_server) == ["Bearer ya29.minted-1"] and not fcm_server.accepted
    assert "ya29" not in result.output and private_key_marker(rsa_key) not in result.output

    (tmp_path / "sa.json").write_text(json.dumps({"type": "service_account"}))
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "FAIL GOOGLE_APPLICATION_CREDENTIALS=" in result.output
