"""Webhooks without a database: the event-type filters, URL and address rules (SSRF), the retry
schedule with its jitter, the message body, secrets and signatures, and the tasks' registration
with the worker and beat."""

from __future__ import annotations

import ast
import base64
import ipaddress
import json
from datetime import UTC, datetime

import pytest
from cryptography.exceptions import InvalidTag
from standardwebhooks import Webhook

from qilian.kit.settings import REPO_ROOT
from services.api.webhooks import delivery, events, service
from services.api.webhooks.repository import Claimed
from services.api.webhooks.settings import WebhookSettings
from services.api.webhooks.targets import TargetRefused, address_refusal, check_url

DEFAULTS = WebhookSettings()


def test_filters_of_an_event_are_itself_its_family_and_everything():
    assert events.filters_matching("offer.received") == ["offer.received", "offer.*", "*"]
    assert events.filters_matching("financing_request.opened")[1] == "financing_request.*"


@pytest.mark.parametrize("value", ["offer.received", "offer.*", "*", "webhook.test", "alert.*"])
def test_known_filters(value):
    assert events.is_known_filter(value)


@pytest.mark.parametrize("value", ["offer", "offer.bogus", "bogus.*", "offer.received.*", "", "**"])
def test_unknown_filters(value):
    assert not events.is_known_filter(value)


def test_the_catalogue_has_every_type_the_platform_publishes():
    for name in ("financing_request.opened", "offer.lost", "financing.lapsed", "receivable.paid"):
        assert name in events.EVENT_TYPES
        assert events.EVENT_TYPES[name]


@pytest.mark.parametrize(
    ("url", "env"),
    [
        ("https://hooks.bank.example/qilian", "production"),
        ("https://93.184.215.14:8443/hook", "production"),
        ("http://127.0.0.1:9000/hook", "production"),
        ("http://localhost:9000/hook", "production"),
        ("http://hooks.bank.example/qilian", "development"),
        ("http://10.1.2.3/hook", "test"),
    ],
)
def test_accepted_urls(url, env):
    assert check_url(url, DEFAULTS, env)


@pytest.mark.parametrize(
    ("url", "env", "reason"),
    [
        ("ftp://hooks.bank.example/", "development", "scheme"),
        ("http://hooks.bank.example/qilian", "production", "https"),
        ("https://10.0.0.5/hook", "production", "private"),
        ("https://192.168.1.1/hook", "production", "private"),
        ("https://169.254.169.254/latest/meta-data", "production", "private"),
        ("https://[fd00::1]/hook", "production", "private"),
        ("https://[::ffff:10.0.0.1]/hook", "production", "private"),
        ("https://0.0.0.0/hook", "development", "private"),
        ("https://user:pw@hooks.bank.example/", "development", "credentials"),
        ("https://hooks.bank.example/#frag", "development", "fragment"),
        ("https:///nohost", "development", "host"),
        ("not a url at all", "development", ""),
    ],
)
def test_refused_urls(url, env, reason):
    with pytest.raises(TargetRefused) as refused:
        check_url(url, DEFAULTS, env)
    assert reason in str(refused.value)


def test_loopback_can_be_refused_and_private_networks_allowed_by_setting():
    strict = WebhookSettings(allow_loopback=False)
    with pytest.raises(TargetRefused):
        check_url("http://127.0.0.1:9000/", strict, "development")
    open_ = WebhookSettings(allow_private_networks=True)
    assert check_url("https://10.0.0.5/hook", open_, "production")
    assert address_refusal(ipaddress.ip_address("8.8.8.8"), DEFAULTS, "production") is None
    assert address_refusal(ipaddress.ip_address("224.0.0.1"), DEFAULTS, "development")


def test_retry_delays_follow_the_schedule_within_the_jitter_then_dead():
    settings = WebhookSettings(retry_schedule=[5, 30, 120], jitter=0.2)
    for failed, base in enumerate([5, 30, 120], start=1):
        for _ in range(50):
            delay = delivery.retry_delay(failed, settings)
            assert delay is not None
            assert base * 0.8 <= delay <= base * 1.2
    assert delivery.retry_delay(4, settings) is None
    assert settings.max_attempts == 4


def test_the_lease_must_outlast_an_attempt():
    with pytest.raises(ValueError, match="lease_seconds"):
        WebhookSettings(timeout_seconds=30, lease_seconds=20)


def test_the_body_is_type_timestamp_and_data_as_compact_json():
    at = datetime(2026, 11, 29, 8, 0, 0, 123456, tzinfo=UTC)
    text = service.body("offer.received", {"amount": "1.00", "when": at}, at)
    assert json.loads(text) == {
        "type": "offer.received",
        "timestamp": "2026-11-29T08:00:00.123Z",
        "data": {"amount": "1.00", "when": "2026-11-29T08:00:00.123456Z"},
    }
    assert " " not in text


def test_secrets_are_standard_webhooks_secrets_and_seal_to_their_endpoint():
    secret = service.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    sealed = service.seal_secret("k", "whk_1", secret)
    assert secret.encode() not in sealed
    assert service.unseal_secret("k", "whk_1", sealed) == secret
    with pytest.raises(InvalidTag):  # another endpoint's ciphertext does not open
        service.unseal_secret("k", "whk_2", sealed)


def test_signature_verifies_and_carries_the_previous_secret_during_its_grace():
    new, old = service.new_secret(), service.new_secret()
    now = datetime.now(UTC)
    claimed = Claimed(
        message_id="msg_1",
        lease_id="l",
        attempt=1,
        round_attempts=1,
        payload='{"type":"webhook.test","timestamp":"t","data":{}}',
        endpoint_id="whk_1",
        url="https://x",
        secret_sealed=service.seal_secret("k", "whk_1", new),
        previous_secret_sealed=service.seal_secret("k", "whk_1", old),
        previous_secret_expires_at=datetime(2999, 1, 1, tzinfo=UTC),
    )
    header = delivery.signature(claimed, now, "k")
    assert len(header.split(" ")) == 2
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": header,
    }
    for secret in (new, old):
        assert Webhook(secret).verify(claimed.payload, headers)["type"] == "webhook.test"
    expired = Claimed(**{**claimed.__dict__, "previous_secret_expires_at": now})
    assert len(delivery.signature(expired, now, "k").split(" ")) == 1


def test_dispatch_and_prune_are_worker_tasks_on_the_beat_schedule():
    # read the worker's module without importing it (its Celery app would re-bind shared tasks)
    tree = ast.parse((REPO_ROOT / "services" / "worker" / "app.py").read_text())
    modules = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "TASK_MODULES" for t in node.targets)
    )
    assert "services.api.webhooks.tasks" in modules
    scheduled = {
        ast.literal_eval(value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        for key, value in zip(node.keys, node.values, strict=True)
        if isinstance(key, ast.Constant) and key.value == "task"
    }
    assert {"webhooks.dispatch", "webhooks.prune"} <= scheduled
    source = (REPO_ROOT / "services" / "api" / "webhooks" / "tasks.py").read_text()
    assert '@task("webhooks.dispatch")' in source
    assert '@task("webhooks.prune")' in source
