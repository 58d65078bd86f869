"""The ledger's error, apart from the records it guards: what every command must be able to catch
(`host.cli.main`) without importing the ledger, the quotas and the policy model behind them."""
from __future__ import annotations


class AuditError(RuntimeError):
    """The record was not written (invalid record, closed log, database failure)."""
