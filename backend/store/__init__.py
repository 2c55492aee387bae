"""Run store: SQL rows plus immutable array files. See docs/store.md."""
from .arrays import read_array, write_array
from .schema import ACTIVE_STATUSES, CONTROL_KINDS, FINAL_STATUSES, RESUMABLE_STATUSES, SCHEMA_VERSION, STATUSES
from .store import RunStore, StoreError

__all__ = ["RunStore", "StoreError", "read_array", "write_array", "SCHEMA_VERSION", "STATUSES",
           "FINAL_STATUSES", "ACTIVE_STATUSES", "RESUMABLE_STATUSES", "CONTROL_KINDS"]
