"""Reads a YAML file as kubectl does: YAML 1.1 rules (PyYAML's safe loader,
as the Go YAML library behind kubectl), where an unquoted 0000... is the
integer 0, `yes`/`on` are booleans and `0755` is octal. Prints the documents
as one JSON list, so the manifest tests validate what the API server would
receive."""
import json
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as f:
    documents = [d for d in yaml.safe_load_all(f) if d is not None]
# a YAML 1.1 timestamp stays text, as kubectl sends it
print(json.dumps(documents, default=str))
