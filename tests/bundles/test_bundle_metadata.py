"""reclf_monai.bundle_metadata: which check validates a bundle's metadata.json (a given schema, the
environment variable, the user cache, a download, or the built-in check), what each refuses, and
that nothing in the project reaches outside its own folder for a schema."""

from __future__ import annotations

import json
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from repository import ROOT

import reclf_monai
from reclf_monai.bundle_metadata import SCHEMA_ENVIRONMENT_VARIABLE, MetadataError, check_metadata, schema_cache

METADATA_FILES = sorted((ROOT / "bundles").glob("*/configs/metadata.json"))
SCHEMA_NAME = "meta_schema_20240725.json"


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    """No schema at hand: an empty user cache and no environment variable."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(SCHEMA_ENVIRONMENT_VARIABLE, raising=False)


def metadata_copy(tmp_path: Path, edit=None, schema_url: str | None = None) -> Path:
    metadata = json.loads(METADATA_FILES[0].read_text())
    if schema_url is not None:
        metadata["schema"] = schema_url
    if edit is not None:
        edit(metadata)
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(metadata))
    return path


def schema_requiring(path: Path, field: str) -> Path:
    """A stand-in for an official schema, one that the built-in check would not apply."""
    path.write_text(json.dumps({"type": "object", "required": [field]}))
    return path


def requirement_pins() -> dict[str, str]:
    """requirements.txt's `name==version` lines, names lower-case."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("#")[0].strip().split("==")
            pins[name.lower()] = version
    return pins


@pytest.mark.parametrize("meta_file", METADATA_FILES, ids=lambda path: path.parts[-3])
def test_the_versions_a_bundle_names_are_the_ones_the_project_pins(meta_file):
    """The metadata repeats the pins in every bundle (MONAI's schema wants them there): they must
    not drift from requirements.txt and the package's own version."""
    metadata = json.loads(meta_file.read_text())
    pins = requirement_pins()
    named = {"monai": metadata["monai_version"], "torch": metadata["pytorch_version"], "numpy": metadata["numpy_version"]}
    named.update(metadata["required_packages_version"])
    package_version = named.pop("reclf-monai")
    assert package_version == reclf_monai.__version__, meta_file
    assert {name: pins.get(name.lower()) for name in named} == named, meta_file


@pytest.mark.parametrize("meta_file", METADATA_FILES, ids=lambda path: path.parts[-3])
def test_every_bundle_passes_the_built_in_check(meta_file):
    check = check_metadata(meta_file, download=False)
    assert check.schema_file is None
    assert check.description.startswith("the built-in check") and "downloading is off" in check.description


@pytest.mark.parametrize(
    "edit, where, problem",
    [
        (lambda metadata: metadata.pop("network_data_format"), "top level", "'network_data_format' is a required property"),
        (lambda metadata: metadata.update(version=2), "version", "2 is not of type 'string'"),
        (lambda metadata: metadata["network_data_format"]["inputs"]["image"].pop("dtype"), "network_data_format/inputs/image", "'dtype' is a required property"),
        (lambda metadata: metadata["network_data_format"].pop("outputs"), "network_data_format", "'outputs' is a required property"),
        (lambda metadata: metadata.update(references=[1]), "references/0", "1 is not of type 'string'"),
    ],
    ids=["required_field", "field_type", "tensor_field", "outputs", "references"],
)
def test_the_built_in_check_refuses_what_the_schema_requires(tmp_path, edit, where, problem):
    meta_file = metadata_copy(tmp_path, edit)
    with pytest.raises(MetadataError) as error:
        check_metadata(meta_file, download=False)
    assert str(error.value).startswith(f"{meta_file}: {where}: ")
    assert problem in str(error.value) and "built-in check" in str(error.value)


def test_a_given_schema_is_used(tmp_path):
    schema = schema_requiring(tmp_path / "schema.json", "field_only_this_schema_requires")
    meta_file = metadata_copy(tmp_path)
    with pytest.raises(MetadataError, match="'field_only_this_schema_requires' is a required property"):
        check_metadata(meta_file, schema)
    complete = metadata_copy(tmp_path, lambda metadata: metadata.update(field_only_this_schema_requires="yes"))
    check = check_metadata(complete, schema)
    assert check.schema_file == schema and str(schema) in check.description and "given path" in check.description


def test_the_environment_variable_names_the_schema(tmp_path, monkeypatch):
    schema = schema_requiring(tmp_path / "schema.json", "field_only_this_schema_requires")
    monkeypatch.setenv(SCHEMA_ENVIRONMENT_VARIABLE, str(schema))
    with pytest.raises(MetadataError, match="field_only_this_schema_requires"):
        check_metadata(metadata_copy(tmp_path), download=False)


def test_a_named_schema_that_is_missing_is_an_error(tmp_path, monkeypatch):
    missing = tmp_path / "no_such_schema.json"
    with pytest.raises(MetadataError, match=f"{missing}: MONAI metadata schema not found"):
        check_metadata(metadata_copy(tmp_path), missing)
    monkeypatch.setenv(SCHEMA_ENVIRONMENT_VARIABLE, str(missing))
    with pytest.raises(MetadataError, match=f"{missing}: MONAI metadata schema not found .*{SCHEMA_ENVIRONMENT_VARIABLE}"):
        check_metadata(metadata_copy(tmp_path))


def test_the_cached_schema_is_used_without_a_download(tmp_path):
    cached = schema_cache() / SCHEMA_NAME
    cached.parent.mkdir(parents=True)
    schema_requiring(cached, "field_only_this_schema_requires")
    with pytest.raises(MetadataError, match="field_only_this_schema_requires"):
        check_metadata(metadata_copy(tmp_path, schema_url="http://127.0.0.1:9/" + SCHEMA_NAME), download=False)


def test_the_schema_is_downloaded_once_into_the_cache(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    schema_requiring(served / SCHEMA_NAME, "version")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{SCHEMA_NAME}"
    try:
        check = check_metadata(metadata_copy(tmp_path, schema_url=url))
    finally:
        server.shutdown()
        server.server_close()
    assert check.schema_file == schema_cache() / SCHEMA_NAME
    assert f"downloaded once to the user cache from {url}" in check.description
    assert json.loads(check.schema_file.read_text()) == {"type": "object", "required": ["version"]}
    assert check_metadata(metadata_copy(tmp_path, schema_url=url)).description.endswith("(the user cache)")  # server is gone


def test_a_failed_download_falls_back_to_the_built_in_check(tmp_path):
    url = "http://127.0.0.1:9/" + SCHEMA_NAME  # the discard port: nothing listens
    check = check_metadata(metadata_copy(tmp_path, schema_url=url))
    assert check.schema_file is None
    assert check.description.startswith("the built-in check") and f"could not download {url}" in check.description
    assert not any(schema_cache().glob("*")) if schema_cache().exists() else True


def test_no_project_file_reaches_outside_the_repository():
    """The project runs from its own files: none names the folder beside the checkout."""
    outside = "../" + "shared"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, stdout=subprocess.PIPE, check=True).stdout.decode().split("\0")
    naming = [name for name in tracked if name and (ROOT / name).is_file() and outside in (ROOT / name).read_text(errors="ignore")]
    assert naming == []
