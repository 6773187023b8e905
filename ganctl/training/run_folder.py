"""Compatibility: the run folder's lock and housekeeping now live in ``ganctl.runfolder``.

``truncate_metrics`` is ``ganctl.runfolder.records.truncate_after``.
"""

from __future__ import annotations

from ganctl.runfolder.lock import RunFolderLock, holds_files, remove_stale_temporaries
from ganctl.runfolder.records import truncate_after as truncate_metrics

__all__ = ["RunFolderLock", "holds_files", "remove_stale_temporaries", "truncate_metrics"]
