"""Scraping a service's ``/metrics`` in tests."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, dict[str, str], float]
"""``(sample name, labels, value)``."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> list[Sample]:
    """Every sample served at ``http://127.0.0.1:<port>/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The value of the one sample ``name`` with exactly ``labels``; None if absent."""
    for sample_name, sample_labels, v in samples:
        if sample_name == name and sample_labels == labels:
            return v
    return None
