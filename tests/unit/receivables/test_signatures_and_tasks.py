"""EIP-712 confirmation signatures (domain, round trip, other keys, malformed signatures) and the
overdue sweep's registration with the worker and beat."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import date
from typing import Any

import pytest

from qilian.kit.settings import REPO_ROOT
from services.api.receivables import signatures
from services.api.receivables.models import Receivable

KEY = "0x" + "21" * 32
DOMAIN = signatures.Domain(31337, "0x5fbdb2315678afecb367f032d93f642f64180aa3")


def receivable(**changes: Any) -> Receivable:
    fields: dict[str, Any] = {
        "id": "rcv_" + "a" * 32,
        "invoice_id": "inv_" + "b" * 32,
        "creditor_id": "org_" + "c" * 32,
        "holder_id": "org_" + "c" * 32,
        "debtor_id": "org_" + "d" * 32,
        "currency": "CNY",
        "face_value_minor": 12_500_050,
        "open_amount_minor": 12_500_050,
        "issue_date": date(2026, 1, 15),
        "due_date": date(2026, 6, 30),
        "due_date_source": "invoice",
    }
    fields.update(changes)
    return Receivable(**fields)


def test_domain_is_qilian_version_1_on_the_anchor_contract():
    typed = signatures.typed_data(receivable(), DOMAIN)
    assert typed["domain"] == {
        "name": "Qilian",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    }
    assert typed["message"]["amountMinor"] == 12_500_050


def test_a_signature_recovers_its_signer_and_no_other():
    typed = signatures.typed_data(receivable(), DOMAIN)
    signature = signatures.sign(typed, KEY)
    assert signatures.recover(typed, signature) == signatures.address_of(KEY)
    other = signatures.sign(typed, "0x" + "42" * 32)
    assert signatures.recover(typed, other) != signatures.address_of(KEY)


def test_a_signature_does_not_carry_over_to_another_amount_or_chain():
    typed = signatures.typed_data(receivable(), DOMAIN)
    signature = signatures.sign(typed, KEY)
    changed = signatures.typed_data(receivable(open_amount_minor=1), DOMAIN)
    assert signatures.recover(changed, signature) != signatures.address_of(KEY)
    elsewhere = signatures.typed_data(receivable(), signatures.Domain(1, DOMAIN.verifying_contract))
    assert signatures.recover(elsewhere, signature) != signatures.address_of(KEY)


@pytest.mark.parametrize("bad", ["0x", "0x1234", "0x" + "zz" * 65, "0x" + "00" * 65])
def test_malformed_signatures_are_invalid(bad):
    typed = signatures.typed_data(receivable(), DOMAIN)
    with pytest.raises(signatures.InvalidSignature):
        signatures.recover(typed, bad)


def test_the_overdue_sweep_is_a_worker_task_on_the_beat_schedule():
    # read the worker's module without importing it: creating its Celery app in-process would
    # make it the current app and re-bind every shared task of the other tests
    tree = ast.parse((REPO_ROOT / "services" / "worker" / "app.py").read_text())
    modules = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "TASK_MODULES" for t in node.targets)
    )
    assert "services.api.receivables.tasks" in modules
    scheduled = {
        ast.literal_eval(value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        for key, value in zip(node.keys, node.values, strict=True)
        if isinstance(key, ast.Constant) and key.value == "task"
    }
    assert "receivables.mark_overdue" in scheduled
    source = (REPO_ROOT / "services" / "api" / "receivables" / "tasks.py").read_text()
    assert '@task("receivables.mark_overdue")' in source


def test_the_api_starts_without_the_signing_libraries_and_preloads_them():
    """They were most of a restarted api's import time (bench/startup.py): loaded on first use
    or by the thread the api starts once it serves."""
    code = (
        "import sys, services.api.main\n"
        "assert 'eth_account' not in sys.modules, 'imported at start'\n"
        "from services.api.receivables import signatures\n"
        "signatures.preload().join(120)\n"
        "assert 'eth_account' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
