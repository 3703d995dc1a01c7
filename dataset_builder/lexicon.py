"""How labels and units are said in the corpus, and which wordings the parser maps back to them.

`LABEL_PHRASES` are the noun phrases answers use (first one is the plainest); `LABEL_ALIASES` are further wordings
the parser accepts (abbreviations, synonyms a model or a clinician may write) but answers never produce. Each
canonical label with underscores as spaces is accepted too. A wording may belong to one label of one task only, so
any text can be read back without ambiguity (tests check this).
"""

from __future__ import annotations

__all__ = ["LABEL_PHRASES", "LABEL_ALIASES", "TASK_ONLY_FORMS", "UNIT_PHRASES", "UNIT_ALIASES", "label_names"]

LABEL_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "activity": {
        "walking": ("walking", "level walking", "a walk"),
        "running": ("running", "a run", "jogging"),
        "sit_to_stand": ("a sit-to-stand test", "repeated sit-to-stand", "a five-times sit-to-stand", "chair rises"),
        "squat": ("a squat", "squatting", "bodyweight squats"),
        "jump": ("a jump", "jumping", "a countermovement jump"),
        "stairs": ("stair climbing", "stair negotiation", "going up and down stairs"),
        "timed_up_and_go": ("a Timed Up and Go test", "the Timed Up and Go (TUG)", "a TUG test"),
        "four_square_step_test": ("a Four Square Step Test", "the four-square step test (FSST)", "an FSST"),
        "standing_balance": ("a standing balance test", "quiet standing", "standing balance"),
        "tandem_walking": ("tandem walking", "heel-to-toe walking", "tandem gait"),
        "turning": ("turning", "a turn on the spot", "turning in place"),
    },
    "impairment": {
        "unimpaired": ("unimpaired", "not impaired", "within normal limits"),
        "impaired": ("impaired", "clearly impaired", "abnormal"),
    },
    "impairment_side": {
        "none": ("neither side", "no affected side"),
        "left": ("the left side", "left"),
        "right": ("the right side", "right"),
        "bilateral": ("both sides", "bilateral"),
    },
    "diagnosis": {
        "healthy": ("a healthy participant with no diagnosed condition", "no diagnosed condition (healthy control)",
                    "healthy movement without a diagnosis"),
        "stroke": ("stroke", "post-stroke hemiparesis", "a previous stroke"),
        "parkinsons_disease": ("Parkinson's disease", "Parkinson disease", "idiopathic Parkinson's disease"),
        "incomplete_sci": ("an incomplete spinal cord injury", "incomplete spinal cord injury (SCI)",
                           "an incomplete SCI"),
        "lower_limb_amputation": ("a lower-limb amputation", "a lower-limb amputation with a prosthesis",
                                  "lower-limb loss (prosthesis user)"),
        "knee_osteoarthritis": ("knee osteoarthritis", "osteoarthritis of the knee", "knee OA"),
        "cerebral_palsy": ("cerebral palsy", "cerebral palsy (CP)"),
    },
    "assistive_device": {
        "none": ("no assistive device", "no walking aid", "no aid at all"),
        "cane": ("a cane", "a single-point cane", "a walking stick"),
        "walker": ("a walker", "a wheeled walker (rollator)", "a walking frame"),
        "bilateral_crutches": ("two crutches", "bilateral forearm crutches", "a pair of crutches"),
        "ankle_foot_orthosis": ("an ankle-foot orthosis", "an ankle-foot orthosis (AFO)", "an AFO"),
    },
    "fall_history": {
        "non_faller": ("no history of falls", "no reported falls", "non-faller"),
        "faller": ("a history of falls", "previous falls", "faller"),
    },
}

LABEL_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "activity": {
        "walking": ("gait", "overground walking", "treadmill walking", "walk", "walks"),
        "running": ("treadmill running", "run", "runs", "jog"),
        "sit_to_stand": ("sit to stand", "chair rise", "chair stand", "five times sit to stand", "5xsts", "sts"),
        "squat": ("squats",),
        "jump": ("jumps", "vertical jump", "hop"),
        "stairs": ("stair", "stairs", "stair ascent", "stair descent", "stair walking"),
        "timed_up_and_go": ("timed up and go", "tug", "up and go"),
        "four_square_step_test": ("four square step test", "fsst", "four square"),
        "standing_balance": ("balance test", "standing still", "romberg"),
        "tandem_walking": ("tandem", "tandem walk", "heel to toe"),
        "turning": ("turn", "turns", "a turn", "pivot turn", "360 degree turn"),
    },
    "impairment": {
        "unimpaired": ("no impairment", "no sign of impairment", "no signs of impairment", "without impairment",
                       "normal", "typical", "not abnormal"),
        "impaired": ("impairment", "pathological", "atypical"),
    },
    "impairment_side": {
        "none": ("no side", "symmetric", "symmetrical", "not lateralised", "not lateralized"),
        "left": ("left side", "left sided", "left leg"),
        "right": ("right side", "right sided", "right leg"),
        "bilateral": ("both legs", "bilaterally", "both"),
    },
    "diagnosis": {
        "healthy": ("healthy", "healthy control", "no diagnosis", "control", "no known condition"),
        "stroke": ("hemiparesis", "hemiparetic", "post stroke", "cva", "cerebrovascular accident"),
        "parkinsons_disease": ("parkinson's", "parkinsons", "parkinson", "pd", "parkinsonism"),
        "incomplete_sci": ("spinal cord injury", "sci", "incomplete sci", "incomplete spinal cord injury"),
        "lower_limb_amputation": ("amputation", "amputee", "prosthesis", "prosthetic", "limb loss",
                                  "transtibial amputation", "transfemoral amputation"),
        "knee_osteoarthritis": ("osteoarthritis", "knee oa", "oa"),
        "cerebral_palsy": ("cp",),
    },
    "assistive_device": {
        "none": ("no device", "no aid", "unaided", "without an aid", "without an assistive device",
                 "without a walking aid", "independently"),
        "cane": ("stick", "single cane", "quad cane"),
        "walker": ("rollator", "zimmer frame", "frame", "rolling walker"),
        "bilateral_crutches": ("crutches", "crutch", "forearm crutches", "bilateral crutches", "elbow crutches"),
        "ankle_foot_orthosis": ("afo", "orthosis", "ankle foot orthosis", "brace", "ankle brace"),
    },
    "fall_history": {
        "non_faller": ("no falls", "no history of falling", "not fallen", "never fallen", "has not fallen",
                       "hasn't fallen", "non faller", "no fall history", "no previous falls"),
        "faller": ("history of falls", "history of falling", "has fallen", "falls reported", "recurrent falls",
                   "fallen", "falls"),
    },
}

# Words that name a label only when the question is known: a leading yes/no for the two binary tasks, "none" for
# the side and the device. The parser of that one task accepts them; a summary never relies on them.
TASK_ONLY_FORMS: dict[str, dict[str, tuple[str, ...]]] = {
    "impairment": {"impaired": ("yes",), "unimpaired": ("no",)},
    "fall_history": {"faller": ("yes",), "non_faller": ("no",)},
    "impairment_side": {"none": ("none",)},
    "assistive_device": {"none": ("none",)},
}

# How answers write each unit (first is the clinical abbreviation), and further spellings the parser accepts.
UNIT_PHRASES: dict[str, tuple[str, ...]] = {
    "steps/min": ("steps/min", "steps per minute"),
    "m/s": ("m/s", "metres per second", "meters per second"),
    "km/h": ("km/h", "kilometres per hour"),
    "m": ("m", "metres"),
    "cm": ("cm", "centimetres"),
    "s": ("s", "seconds"),
}
UNIT_ALIASES: dict[str, tuple[str, ...]] = {
    "steps/min": ("steps/minute", "steps a minute", "steps per min", "spm"),
    "m/s": ("meter per second", "metre per second", "mps"),
    "km/h": ("kilometers per hour", "kph", "km per hour", "kmh", "km/hr"),
    "m": ("meters", "metre", "meter"),
    "cm": ("centimeters", "centimetre", "centimeter"),
    "s": ("sec", "secs", "second"),
}


def label_names(task: str) -> dict[str, list[str]]:
    """Every name the corpus gives each label of `task`: its answer phrases (`LABEL_PHRASES`) then the parser's
    aliases (`LABEL_ALIASES`), as written. Saved with a trained model's processor so that a question naming a label
    ("a zimmer frame", "CVA") is routed to its task without this package (`BiomechGPTProcessor(label_names=...)`).

    Args:
        task (`str`): a closed-set task; any other gives `{}`.

    Returns:
        `dict[str, list[str]]`: label -> names.
    """
    phrases, aliases = LABEL_PHRASES.get(task, {}), LABEL_ALIASES.get(task, {})
    return {label: [*phrases.get(label, ()), *aliases.get(label, ())] for label in {**phrases, **aliases}}
