"""Which broker the interop suite runs against, and the marks for where Strom
and Apache Kafka differ.

STROM_INTEROP_AGAINST=kafka runs the suite against Apache Kafka 4.4 (a
combined-mode KRaft broker started by scripts/kafka), to prove the tests encode
Kafka's behaviour and not our reading of it. Unset (or `strom`), the suite runs
against `strom server` as always.
"""
import os

import pytest

AGAINST = os.environ.get("STROM_INTEROP_AGAINST", "strom")
if AGAINST not in ("strom", "kafka"):
    raise RuntimeError(f"STROM_INTEROP_AGAINST must be strom or kafka, not {AGAINST!r}")
AGAINST_KAFKA = AGAINST == "kafka"


def strom_gap(reason):
    """Kafka's behaviour that Strom does not have yet: expected to fail against
    Strom only (the reason names the request, what Kafka does and what Strom does)."""
    return pytest.mark.xfail(not AGAINST_KAFKA, reason=f"Strom differs from Kafka: {reason}", strict=False)


def strom_only(reason):
    """A test of Strom's own behaviour (its CLI, log lines, data files, extensions):
    skipped against Kafka, with the reason why."""
    return pytest.mark.skipif(AGAINST_KAFKA, reason=f"differs on purpose: {reason}")


def kafka_differs(reason):
    """Behaviour where Strom differs from Kafka on purpose: expected to fail
    against Kafka only, with the reason."""
    return pytest.mark.xfail(AGAINST_KAFKA, reason=f"differs on purpose: {reason}", strict=False)
