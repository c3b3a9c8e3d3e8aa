"""bookworm's bottom layer: settings, model sources, atomic writes and user-facing errors.

Every package may import ``core``; ``core`` imports none of them (indexing, training,
assistant, ui), so it can never create an import cycle.
"""
