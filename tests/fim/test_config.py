"""Settings: camelCase on the wire, per-field errors, and a README that tells the truth."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec

from fim.config import CONFIG_SECTION, Config, options_table, parse

README = Path(__file__).resolve().parents[2] / "README.md"


def test_wire_names_are_camel_case() -> None:
    wire = msgspec.to_builtins(Config())
    assert "nCtx" in wire and "maxTokensMultiline" in wire and "n_ctx" not in wire


def test_bad_fields_are_named_and_the_rest_applies() -> None:
    config, problems = parse({"nCtx": "big", "maxTokens": 12, "kvCacheType": "q2", "colour": "red"})
    assert config.max_tokens == 12
    assert config.n_ctx == Config().n_ctx and config.kv_cache_type == "f16"
    named = {problem.field for problem in problems}
    assert named == {"nCtx", "kvCacheType", "colour"}
    assert all("using the default" in str(problem) for problem in problems)


def test_section_wrapper_and_out_of_range() -> None:
    config, problems = parse({CONFIG_SECTION: {"suffixTokens": -3, "temperature": 0.3}})
    assert config.suffix_tokens == Config().suffix_tokens
    assert config.temperature == 0.3
    assert [p.field for p in problems] == ["suffixTokens"]
    assert ">= 0" in problems[0].message


def test_non_object_settings_are_rejected_whole() -> None:
    config, problems = parse(["not", "an", "object"])
    assert config == Config()
    assert problems and "expected an object" in problems[0].message


def test_readme_documents_every_option_with_its_default() -> None:
    text = README.read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", text, flags=re.MULTILINE))
    for name, _type, default in options_table():
        assert name in rows, f"README lacks option {name}"
        documented = json.loads(rows[name])
        actual = msgspec.to_builtins(Config())[name]
        assert documented == actual, f"README says {name} = {rows[name]}, code says {default}"


def test_empty_lua_tables_count_as_empty_objects() -> None:
    assert parse([]) == (Config(), [])
    assert parse({CONFIG_SECTION: []}) == (Config(), [])
