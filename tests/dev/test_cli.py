from __future__ import annotations

from pathlib import Path

import pytest
from support import free_port

from modelgate_dev import cli


def test_trigger_refuses_conf_that_is_not_a_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["trigger", "model_registration", "--conf", "{not json", "--password", "x"]) == 2
    assert "--conf is not valid JSON" in capsys.readouterr().err
    assert cli.main(["trigger", "model_registration", "--conf", "[1, 2]", "--password", "x"]) == 2
    assert "must be a JSON object" in capsys.readouterr().err


def test_trigger_names_an_unreachable_airflow(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["trigger", "model_registration", "--url", url, "--password", "x"]) == 2
    assert f"cannot reach Airflow at {url}" in capsys.readouterr().err


def test_audit_and_batch_subcommands_delegate_with_their_own_help(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["batch", "--help"])
    assert e.value.code == 0
    assert "--model-uri" in capsys.readouterr().out
    missing = tmp_path / "audit.db"
    assert cli.main(["audit", "--db", f"sqlite:///{missing}", "verify"]) == 2  # refused, not created
    assert "does not exist" in capsys.readouterr().err and not missing.exists()


def test_an_approval_request_is_answered_only_once_its_task_has_parked() -> None:
    from modelgate_dev.cli import answerable

    def detail(state: str, answered: bool = False) -> dict[str, object]:
        return {"response_received": answered, "task_instance": {"task_id": "approval_1", "state": state}}

    # Airflow writes the request while the task still runs; an answer then is recorded but resumes nothing
    assert not answerable(detail("running"))
    assert answerable(detail("awaiting_input"))
    assert answerable(detail("deferred"))
    assert not answerable(detail("awaiting_input", answered=True))
    assert not answerable(detail("success"))
