"""Parses a Prometheus text exposition page (stdin) with prometheus_client's parser and prints what it read as
JSON: {"families": {name: type}, "samples": [[name, {label: value}, value], ...]}. Exits non-zero (with the
parser's error) on a page the parser refuses."""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    page = sys.stdin.read()
    families = {}
    samples = []
    for family in text_string_to_metric_families(page):
        families[family.name] = family.type
        for sample in family.samples:
            value = sample.value
            if math.isinf(value):
                value = "+Inf" if value > 0 else "-Inf"
            samples.append([sample.name, dict(sample.labels), value])
    json.dump({"families": families, "samples": samples}, sys.stdout)


if __name__ == "__main__":
    main()
