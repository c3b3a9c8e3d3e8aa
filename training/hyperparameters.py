"""What a run is asked to do: the training settings as one checked, frozen record.

Its fields are not declared here: they are the :class:`~core.config.Settings` fields of section
"training", with their types, defaults and help, so a new training setting is declared once and is
recorded in the manifest and compared by ``--if-stale`` without a second list to keep in step.
"""

from __future__ import annotations

import dataclasses
import typing

from core.config import CHOICES, Settings, check_values, section_fields

PRECISIONS = CHOICES["precision"]


def _training_fields() -> list[tuple[str, type, dataclasses.Field]]:
    hints = typing.get_type_hints(Settings)
    return [
        (f.name, hints[f.name], dataclasses.field(default=f.default, metadata=f.metadata))
        for f in section_fields("training")
    ]


# the same checks as Settings (only these fields'), also for a record made by dataclasses.replace
_TrainingSettings = dataclasses.make_dataclass(
    "_TrainingSettings", _training_fields(), frozen=True, namespace={"__post_init__": check_values}
)


class Hyperparameters(_TrainingSettings):
    """What a run was asked to do; recorded in the manifest and compared by ``--if-stale``.

    Fields: epochs, batch_size, grad_accum, learning_rate, ... (``section_fields("training")``;
    their help is in ``core/config.py``). A subclass of the made dataclass, so that it is a plain
    class to name in type hints.
    """

    @classmethod
    def from_settings(cls, settings: Settings) -> Hyperparameters:
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})
