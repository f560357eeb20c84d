"""Interactive Brokers' execution id grammar (the broker layer's knowledge, not the database's).

IB corrects a fill by re-sending it with an exec id that differs only after the last '.': the
part before is the fill's group, the hexadecimal suffix its version (`0000e0d5.6520c85f.01.01`,
then `...01.02`). The IB adapter and the Flex import put both on the canonical event; the
ledger then supersedes the earlier version if it is the same fill (account, instrument, side,
order). The `ib` package imports its modules lazily, so using this one does not import
ib_async (the Flex import and the database's compatibility helper use it).
"""

from __future__ import annotations


def split_exec_id(exec_id: str) -> tuple[str, int]:
    """(group, version) of an IB exec id; an id without a hexadecimal suffix is its own group."""
    base, dot, suffix = exec_id.rpartition(".")
    if dot and base and suffix:
        try:
            return base, int(suffix, 16)
        except ValueError:
            pass
    return exec_id, 0
