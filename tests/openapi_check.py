"""Validates real answers against the served OpenAPI document (tests/product.rs feeds it).

stdin: {"spec": <openapi.json>, "cases": [{"what": "...", "schema": "ClassifyResponse", "value": {...},
        "expect_error"?: true}]}  (expect_error marks a canary that must fail)
The document itself is checked with openapi-spec-validator (OpenAPI 3.1), each answer with a
JSON Schema 2020-12 validator against `#/components/schemas/<schema>`. Exits 1 on any error.
"""
import json
import sys

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

request = json.load(sys.stdin)
spec = request["spec"]
validate(spec)
failures = 0
for case in request["cases"]:
    root = {"$ref": f"#/components/schemas/{case['schema']}", "components": spec["components"]}
    Draft202012Validator.check_schema(root)
    errors = list(Draft202012Validator(root).iter_errors(case["value"]))
    if case.get("expect_error"):
        # A canary: a wrong answer must be caught, or this check proves nothing.
        if not errors:
            failures += 1
            print(f"{case['what']} ({case['schema']}): a wrong answer passed")
        continue
    for error in errors:
        failures += 1
        path = "/".join(str(p) for p in error.absolute_path)
        print(f"{case['what']} ({case['schema']}) at /{path}: {error.message}")
print(f"{len(request['cases'])} answers checked, {failures} errors")
sys.exit(1 if failures else 0)
