#!/usr/bin/env python3
"""Checks a reuseport_bench result file: every phase ran and reported, every
target has a figure. It judges that the benchmark works, not the figures: a
CI machine's speed says nothing about the targets."""
import json
import sys
import xml.etree.ElementTree as ET

PHASES = ["tcp_short", "idle_first_byte_latency", "tcp_persistent", "udp", "overhead", "broker", "churn"]


def main(results_path, svg_path):
    with open(results_path) as f:
        results = json.load(f)
    problems = []
    if results.get("failures"):
        problems.append("phases failed: %s" % results["failures"])
    for phase in PHASES:
        if phase not in results.get("sections", {}):
            problems.append("no section for phase %s" % phase)
    targets = results.get("targets", [])
    if len(targets) < 15:
        problems.append("only %d targets reported" % len(targets))
    for t in targets:
        if not isinstance(t.get("value"), (int, float)) or t.get("met") not in (True, False, None):
            problems.append("target without a figure: %s" % t)
    svg = ET.parse(svg_path).getroot()
    if not svg.tag.endswith("svg") or len(list(svg.iter())) < 20:
        problems.append("the chart is empty")
    for p in problems:
        print("bench check: " + p)
    summary = results.get("summary", {})
    print("bench check: %d targets, %s met, %s missed; %s" %
          (len(targets), summary.get("met"), summary.get("missed"), "OK" if not problems else "FAILED"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
