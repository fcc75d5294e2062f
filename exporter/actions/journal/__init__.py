"""The action journal (SQLite): :class:`Journal` and the records it stores.

``schema`` opens the file safely and creates its tables; ``store`` is the :class:`Journal` (up or down,
the one write API, the state updates of an action, the reads); ``records`` the rows as frozen dataclasses.
"""

from __future__ import annotations

from exporter.actions.journal.records import ActionRecord, DecisionRecord, NotificationRecord, PastAction
from exporter.actions.journal.store import Journal

__all__ = ["ActionRecord", "DecisionRecord", "Journal", "NotificationRecord", "PastAction"]
