"""Guards the rule "contract tests cover every function and every revert": each function and
custom error of both ABIs must be named (quoted) in a test of this directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.ledger.chain.artifacts import load_artifact

HERE = Path(__file__).resolve().parent
# Raised only by Ownable's constructor for a zero deployer, which no transaction can be.
UNREACHABLE = {"OwnableInvalidOwner"}


@pytest.mark.parametrize("name", ["ReceivableAnchor", "FinancingRegistry"])
def test_every_function_and_custom_error_is_exercised_by_a_test(name):
    tests = "".join(p.read_text() for p in HERE.glob("test_*.py") if p.name != Path(__file__).name)
    names = {
        item["name"]
        for item in load_artifact(name).abi
        if item["type"] in {"function", "error"} and item["name"] not in UNREACHABLE
    }
    missing = sorted(n for n in names if f'"{n}"' not in tests)
    assert missing == []
