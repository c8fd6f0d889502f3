"""The shared contracts: event schema against docs/events.md, URI grammar, tag names, hashing, routes."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from support import REPO

from modelgate_contracts import tags
from modelgate_contracts.events import FIELDS, event_schema
from modelgate_contracts.hashing import sha256_file
from modelgate_contracts.routes import RoutesDocument
from modelgate_contracts.uris import MalformedModelUri, ModelUri, parse_model_uri, version_uri

DOC_TYPES = {
    "timestamp[us, UTC]": "timestamp[us, tz=UTC]",
    "string": "string",
    "bool": "bool",
    "float64": "double",
    "int32": "int32",
}


def _documented_columns() -> list[tuple[str, str, bool]]:
    """(name, arrow type, nullable) of each row of the column table in docs/events.md."""
    rows = []
    for line in (REPO / "docs" / "events.md").read_text().splitlines():
        m = re.match(r"^\| `(\w+)` \| ([^|]+?) \|", line)
        if m and not m[1].startswith("ROUTER_"):
            typ = m[2].strip()
            nullable = typ.endswith(", nullable")
            rows.append((m[1], DOC_TYPES[typ.removesuffix(", nullable")], nullable))
    return rows


def test_event_schema_matches_the_documented_columns_in_order() -> None:
    schema = event_schema()
    got = [(f.name, str(f.type), f.nullable) for f in schema]
    assert got == _documented_columns()
    assert tuple(schema.names) == FIELDS


def test_router_and_generator_use_the_one_event_schema() -> None:
    import router.events

    from modelgate_dev.abtest import generate

    assert router.events.schema is event_schema
    assert generate.event_schema is event_schema
    assert router.events.FIELDS is FIELDS


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/churn@champion", ModelUri("churn", alias="champion")),
        ("models:/churn/12", ModelUri("churn", version="12")),
        ("models:/a.b-c_d@canary-2", ModelUri("a.b-c_d", alias="canary-2")),
        ("/tmp/model.onnx", None),
        ("file:///tmp/model", None),
    ],
)
def test_model_uri_grammar_parses_both_registry_forms_and_leaves_paths(uri: str, expected: object) -> None:
    ref = parse_model_uri(uri)
    assert ref == expected
    if ref is not None:
        assert str(ref) == uri


@pytest.mark.parametrize(
    "uri",
    ["models:/", "models:/churn", "models:/churn/v2", "models:/churn/1/2", "models:/churn@", "models:/@x"],
)
def test_malformed_registry_uri_is_refused_with_both_forms_named(uri: str) -> None:
    with pytest.raises(MalformedModelUri, match=r"models:/<name>@<alias> or models:/<name>/<version>"):
        parse_model_uri(uri)


def test_the_three_former_parsers_now_share_the_grammar() -> None:
    from include.batch.errors import BatchModelError
    from include.batch.nightly import pin_model
    from include.registry.errors import ModelNotFound
    from include.registry.resolve import resolve_model_uri

    with pytest.raises(ModelNotFound, match="malformed model URI"):
        resolve_model_uri("models:/churn/latest")
    with pytest.raises(BatchModelError, match="malformed model URI"):
        pin_model("models:/churn/latest")
    assert pin_model("models:/churn/3") == version_uri("churn", 3) == "models:/churn/3"


def test_sha256_file_matches_the_published_vector_and_hashlib(tmp_path: Path) -> None:
    small = tmp_path / "abc"
    small.write_bytes(b"abc")
    # FIPS 180-2, appendix B.1
    assert sha256_file(small) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 9000)  # > 2 chunks of 1 MiB
    assert sha256_file(str(big)) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_tag_names_are_the_manifest_names_the_registry_and_router_use() -> None:
    import router.sources

    from include.registry import manifest

    assert router.sources.SHA_TAG == manifest.TAG_SHA256 == tags.SHA256 == "modelgate.sha256"
    assert manifest.LINEAGE_PREFIX == "modelgate.lineage."
    values = [v for k, v in vars(tags).items() if k.isupper()]
    assert all(v.startswith(tags.PREFIX) for v in values)
    assert len(values) == len(set(values))


def test_routes_model_is_the_routers() -> None:
    import router.routes

    assert router.routes.RoutesDocument is RoutesDocument
    doc = RoutesDocument.model_validate(
        {"models": {"churn": {"variants": [{"name": "a", "uri": "models:/churn/1", "weight_bp": 10000}]}}}
    )
    assert doc.models["churn"].champion_name() == "a"
    with pytest.raises(ValueError, match="sum to 10000"):
        RoutesDocument.model_validate(
            {"models": {"churn": {"variants": [{"name": "a", "uri": "x", "weight_bp": 10}]}}}
        )
