from __future__ import annotations

import pytest

from include.registry import manifest as mf
from include.registry.errors import InvalidConf, InvalidModelName
from include.registry.request import RegistrationRequest


@pytest.mark.parametrize("name", ["churn", "fraud-v2", "a.b_c", "X1"])
def test_valid_model_names_are_accepted(name: str) -> None:
    assert mf.validate_model_name(name) == name


@pytest.mark.parametrize("name", ["", "bad name", "-lead", "x" * 129, None, 42, "a/b", "../etc"])
def test_invalid_model_names_are_refused_with_the_name_in_the_message(name: object) -> None:
    with pytest.raises(InvalidModelName, match="invalid model name"):
        mf.validate_model_name(name)


def test_first_version_is_1_0_0_and_signature_change_bumps_major() -> None:
    assert mf.next_semver(None, None, "sig") == "1.0.0"
    assert mf.next_semver("1.3.0", "sig", "sig") == "1.4.0"
    assert mf.next_semver("1.3.2", "sig", "other") == "2.0.0"


@pytest.mark.parametrize("bad", ["1.0", "v1.0.0", "01.0.0", "1.0.0-rc1", ""])
def test_bad_semver_is_refused(bad: str) -> None:
    with pytest.raises(InvalidConf, match="invalid semver"):
        mf.parse_semver(bad)


def test_lineage_becomes_prefixed_tags_and_refuses_unknown_fields() -> None:
    tags = mf.Lineage.from_dict({"git_sha": "abc", "params": {"C": 1}}).to_tags()
    assert tags == {"modelgate.lineage.git_sha": "abc", "modelgate.lineage.params": '{"C": 1}'}
    with pytest.raises(InvalidConf, match="unknown lineage field"):
        mf.Lineage.from_dict({"gitsha": "abc"})
    with pytest.raises(InvalidConf, match=r"lineage.params must be an object"):
        mf.Lineage.from_dict({"params": [1]})


def test_registration_request_normalises_a_good_conf() -> None:
    req = RegistrationRequest.from_conf(
        {"model_name": "churn", "artifact_uri": " /m.onnx ", "residency": "eu-west-1", "semver": "2.0.0"}
    )
    assert req.artifact_uri == "/m.onnx"
    assert req.residency == "eu-west-1"
    assert req.lineage["params"] == {}


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ([], "conf must be a JSON object"),
        ({}, "model_name is required"),
        ({"model_name": "churn"}, "artifact_uri is required"),
        ({"model_name": "churn", "artifact_uri": "/x", "colour": 1}, "unknown conf field"),
        ({"model_name": "churn", "artifact_uri": "/x", "semver": 2}, "semver must be a string"),
        ({"model_name": "churn", "artifact_uri": "/x", "residency": "EU WEST"}, "invalid residency"),
        ({"model_name": "has space", "artifact_uri": "/x"}, "invalid model name"),
    ],
)
def test_bad_conf_names_the_problem(conf: object, message: str) -> None:
    with pytest.raises((InvalidConf, InvalidModelName), match=message):
        RegistrationRequest.from_conf(conf)
