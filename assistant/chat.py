"""The assistant: question -> retrieve -> prompt within the window -> generate -> Answer.

One :class:`Assistant` is shared by every UI session: generation is serialised by a lock
(one model, one set of torch threads, and the seed must be set and used atomically).
"""

from __future__ import annotations

from assistant.records import Answer, ModelInfo, Source, Timings, new_answer_id

__all__ = ["Answer", "ModelInfo", "Source", "Timings", "new_answer_id"]
