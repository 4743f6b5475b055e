"""A bundle's ``configs/metadata.json`` checked against MONAI's metadata schema when that schema can
be had, otherwise against this project's own check of what the schema requires.

MONAI's ``verify_metadata`` needs the schema file, which is published on GitHub (the metadata's
``schema`` URL): a machine without a network cannot fetch it, and the schema is not shipped with
MONAI or with this project. So the schema is looked for, in order:

1. a path the caller gives (``package_bundle.py --schema PATH``);
2. the path in ``$RECLF_MONAI_METADATA_SCHEMA``;
3. the user cache (``${XDG_CACHE_HOME:-~/.cache}/reclf-monai/schemas/``), where it is downloaded
   once, with a timeout, when a network is there.

A path given in 1 or 2 must exist (an error otherwise: the user asked for that file). When none of
them gives the schema, :data:`BUILT_IN_CHECK` runs instead: a JSON schema written here from the
requirements of MONAI's ``meta_schema_20240725`` (its required fields and their types, and the
tensor description of every ``*_data_format``). Every result says which check ran.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_ENVIRONMENT_VARIABLE = "RECLF_MONAI_METADATA_SCHEMA"
DOWNLOAD_TIMEOUT_S = 20.0

logger = logging.getLogger(__name__)

# What meta_schema_20240725 requires of every bundle's metadata: field -> JSON type.
_REQUIRED_FIELDS = {
    "schema": "string",
    "version": "string",
    "monai_version": "string",
    "pytorch_version": "string",
    "numpy_version": "string",
    "required_packages_version": "object",
    "task": "string",
    "description": "string",
    "authors": "string",
    "copyright": "string",
    "network_data_format": "object",
}
# Fields it types without requiring them.
_OPTIONAL_FIELDS = {
    "changelog": "object",
    "data_source": "string",
    "data_type": "string",
    "image_classes": "string",
    "label_classes": "string",
    "pred_classes": "string",
    "eval_metrics": "object",
    "intended_use": "string",
    "references": "array",
    "supported_apps": "object",
}
# A tensor argument or result of a network: field -> JSON type(s); the last two are optional.
_TENSOR_FIELDS = {
    "type": "string",
    "format": "string",
    "num_channels": "integer",
    "spatial_shape": "array",
    "dtype": "string",
    "value_range": "array",
    "is_patch_data": "boolean",
    "channel_def": "object",
}
_OPTIONAL_TENSOR_FIELDS = ("is_patch_data", "channel_def")


def _built_in_check() -> dict[str, Any]:
    tensor = {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in _TENSOR_FIELDS.items()},
        "required": [name for name in _TENSOR_FIELDS if name not in _OPTIONAL_TENSOR_FIELDS],
    }
    tensor["properties"]["spatial_shape"]["items"] = {"type": ["string", "integer"]}
    tensor["properties"]["value_range"]["items"] = {"type": "number"}
    argument = {"anyOf": [{"type": ["number", "string", "boolean"]}, tensor]}
    arguments = {"type": "object", "additionalProperties": argument}
    network_format = {
        "type": "object",
        "properties": {"inputs": arguments, "outputs": arguments, "post_processed_outputs": arguments},
        "required": ["inputs", "outputs"],
    }
    properties = {name: {"type": kind} for name, kind in {**_REQUIRED_FIELDS, **_OPTIONAL_FIELDS}.items()}
    properties["references"]["items"] = {"type": "string"}
    properties["network_data_format"] = network_format
    return {
        "type": "object",
        "properties": properties,
        "patternProperties": {"^[_a-zA-Z0-9]+_data_format$": network_format},
        "required": list(_REQUIRED_FIELDS),
    }


BUILT_IN_CHECK = _built_in_check()
BUILT_IN_DESCRIPTION = "the built-in check of what MONAI's metadata schema requires"


class MetadataError(ValueError):
    """Metadata that does not validate, or a schema that cannot be read: the file and the problem."""

    def __init__(self, file: Path | str, problem: str):
        self.file, self.problem = file, problem
        super().__init__(f"{file}: {problem}")


@dataclass(frozen=True)
class MetadataCheck:
    """Which check validated the metadata: `schema_file` is the official schema, or None for the
    built-in check; `description` says so in words (with why the official one was not used)."""

    schema_file: Path | None
    description: str


def schema_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reclf-monai" / "schemas"


def _download(url: str, destination: Path) -> str | None:
    """Fetch `url` into `destination` (complete or not at all); None when done, else why not.
    urllib with a timeout, as MONAI's own download has none and would hang on a closed network."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            content = response.read()
        json.loads(content)
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"could not download {url}: {error}"
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=destination.parent, suffix=".partial")
    with os.fdopen(handle, "wb") as file:
        file.write(content)
    os.replace(partial, destination)
    return None


def find_official_schema(schema_url: str, schema_file: Path | None = None, download: bool = True) -> tuple[Path | None, str]:
    """The official schema's file and where it came from, or (None, why it could not be had)."""
    for given, source in ((schema_file, "given path"), (os.environ.get(SCHEMA_ENVIRONMENT_VARIABLE), f"${SCHEMA_ENVIRONMENT_VARIABLE}")):
        if given:
            if not Path(given).is_file():
                raise MetadataError(given, f"MONAI metadata schema not found (the {source})")
            return Path(given), f"the {source}"
    cached = schema_cache() / schema_url.rstrip("/").rsplit("/", 1)[-1]
    if cached.is_file():
        return cached, "the user cache"
    if not download:
        return None, f"not in the user cache ({cached}) and downloading is off"
    problem = _download(schema_url, cached)
    if problem is None:
        logger.info("downloaded the MONAI metadata schema to %s", cached)
        return cached, f"downloaded once to the user cache from {schema_url}"
    return None, problem


def check_metadata(meta_file: Path, schema_file: Path | None = None, download: bool = True) -> MetadataCheck:
    """Validate `meta_file`; returns which check ran, raises :class:`MetadataError` naming the file
    and the first problem."""
    try:
        metadata = json.loads(Path(meta_file).read_text())
    except (OSError, ValueError) as error:
        raise MetadataError(meta_file, f"not a readable JSON file: {error}") from error
    if not isinstance(metadata, dict) or not isinstance(metadata.get("schema"), str):
        raise MetadataError(meta_file, "needs a 'schema' field with the URL of MONAI's metadata schema")
    official, origin = find_official_schema(metadata["schema"], schema_file, download)
    if official is None:
        schema, check = BUILT_IN_CHECK, MetadataCheck(None, f"{BUILT_IN_DESCRIPTION} (official schema: {origin})")
    else:
        try:
            schema = json.loads(official.read_text())
        except (OSError, ValueError) as error:
            raise MetadataError(official, f"the MONAI metadata schema is not a readable JSON file: {error}") from error
        check = MetadataCheck(official, f"MONAI's schema {official} ({origin})")
    try:
        jsonschema.validate(metadata, schema)
    except jsonschema.ValidationError as error:
        where = "/".join(str(part) for part in error.absolute_path) or "top level"
        raise MetadataError(meta_file, f"{where}: {error.message} (checked with {check.description})") from error
    return check
