"""Answer questions from the indexed books: retrieve -> prompt within the window -> generate.

Public API (see docs/architecture.md): ``assistant.pipeline.Assistant``, ``Answer``, ``Source``,
``Timings``; ``assistant.presets`` (PRESETS, PARAM_HELP, GenerationParams);
``assistant.monitor`` (log_answer, log_feedback); ``assistant.status.check``.
"""
