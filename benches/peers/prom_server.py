"""The Python peer for /metrics: a prometheus_client HTTP server exposing the same families and
series as a given mt5bot exposition (read from a file), so both serve the same work.

Usage: prom_server.py EXPOSITION_FILE PORT
"""
import re
import sys
import time

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.parser import text_string_to_metric_families


def mirror(text):
    """Registers one prometheus_client metric per family in `text`, with its samples' values."""
    made = 0
    for fam in text_string_to_metric_families(text):
        samples = fam.samples
        if not samples:
            continue
        name = fam.name
        doc = fam.documentation or name
        if fam.type == "counter":
            labels = sorted({k for s in samples for k in s.labels})
            m = Counter(name, doc, labels)
            for s in samples:
                if s.name.endswith("_total"):
                    (m.labels(**s.labels) if labels else m).inc(s.value)
                    made += 1
        elif fam.type == "gauge":
            labels = sorted({k for s in samples for k in s.labels})
            m = Gauge(name, doc, labels)
            for s in samples:
                (m.labels(**s.labels) if labels else m).set(s.value)
                made += 1
        elif fam.type == "histogram":
            labels = sorted({k for s in samples for k in s.labels if k != "le"})
            buckets = sorted({float(s.labels["le"]) for s in samples if s.name.endswith("_bucket")})
            m = Histogram(name, doc, labels, buckets=buckets)
            for s in samples:
                if s.name.endswith("_sum"):
                    child = m.labels(**{k: s.labels[k] for k in labels}) if labels else m
                    child.observe(s.value)
                    made += 1
        else:
            g = Gauge(re.sub(r"[^a-zA-Z0-9_:]", "_", name), doc)
            g.set(samples[0].value)
            made += 1
    return made


def main():
    text = open(sys.argv[1]).read()
    # The default registry's own process/platform collectors would add series mt5bot does not
    # count the same way; the mirror brings mt5bot's process_* families itself.
    for c in list(REGISTRY._collector_to_names):
        REGISTRY.unregister(c)
    mirror(text)
    start_http_server(int(sys.argv[2]), addr="127.0.0.1")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
