"""biomechgpt: a Hugging Face-native motion-language model for clinical questions about human movement."""

from biomechgpt.processing.motion import (
    CANONICAL_COORDINATES,
    CANONICAL_FRAME_RATE,
    Motion,
    MotionInputError,
)

__version__ = "0.1.0"

__all__ = [
    "CANONICAL_COORDINATES",
    "CANONICAL_FRAME_RATE",
    "Motion",
    "MotionInputError",
    "__version__",
]
