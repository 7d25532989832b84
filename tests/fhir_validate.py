"""Validates FHIR R4 resources with fhir.resources' R4B models (pydantic),
a validator that is not Amanah's: one JSON resource per line on stdin
(a Bundle's entries are validated too, as its model holds them); prints
one line per resource, "ok <type>/<id>" or "error <line>: <message>", and
exits 1 if any failed. R4B is R4's technical correction; the resources
Amanah serves are the same in both.

Run by tests/tests/fhir.rs with the venv `cargo xtask` installs
(xtask/py-tools/fhir.txt).
"""

import json
import sys

from fhir.resources.R4B import get_fhir_model_class


def main() -> int:
    failed = 0
    for n, line in enumerate(sys.stdin, 1):
        line = line.strip()
        if not line:
            continue
        try:
            data = json.loads(line)
            model = get_fhir_model_class(data["resourceType"])
            r = model.model_validate(data)
            print(f"ok {data['resourceType']}/{getattr(r, 'id', None)}")
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failed += 1
            first = str(e).replace("\n", " | ")[:2000]
            print(f"error {n}: {first}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
