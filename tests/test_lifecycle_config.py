"""The ``[lifecycle]`` configuration section: defaults, the policy it makes, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from models.lifecycle.policy import LifecyclePolicy, NoResponse


def test_the_defaults_are_the_policy_defaults(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml here
    settings = load_settings(environ={})
    assert settings.lifecycle.policy() == LifecyclePolicy()
    assert LifecyclePolicy() == LifecyclePolicy(
        transfer_hours=24, access_reminder_hours=72, review_days=90, review_reminder_days=7,
        review_deadline_days=14, review_no_response=NoResponse.KEEP)


def test_values_reach_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[lifecycle]\ntransfer_hours = 48\naccess_reminder_hours = 24\n'
                    'review_days = 0\nreview_no_response = "suspend"\n', encoding="utf-8")
    policy = load_settings(path, environ={}).lifecycle.policy()
    assert (policy.transfer_hours, policy.access_reminder_hours, policy.review_days) == (48, 24, 0)
    assert policy.review_no_response == NoResponse.SUSPEND


@pytest.mark.parametrize(("body", "expected"), [
    ("transfer_hours = 0", "lifecycle.transfer_hours: Input should be greater than or equal to 1"),
    ('review_no_response = "delete"',
     "lifecycle.review_no_response: Input should be 'keep' or 'suspend'"),
    ("review_reminder_days = 14", "review_reminder_days must be less than review_deadline_days"),
    ("review_days = 10", "review_days must be 0 (off) or more than review_deadline_days"),
    ("transfer_minutes = 5", "unknown key 'lifecycle.transfer_minutes'"),
])
def test_bad_values_are_one_line(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[lifecycle]\n{body}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_the_policy_checks_its_own_values() -> None:
    with pytest.raises(ValueError):
        LifecyclePolicy(review_reminder_days=14)
    with pytest.raises(ValueError):
        LifecyclePolicy(transfer_hours=0)
