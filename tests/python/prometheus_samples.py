"""Reads Prometheus text exposition on stdin with Prometheus's own Python
parser (prometheus_client) and prints every sample whose name contains
`certgate` as a JSON list of {name, labels, value}: what a Prometheus server
scraping Envoy's /stats/prometheus would store."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        if "certgate" in s.name:
            samples.append({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(samples))
