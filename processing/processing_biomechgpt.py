"""The BiomechGPT processor: text tokenizer + MotionTokenizer → token ids, and what a model needs to answer.

A conversation about a motion is laid out with the text tokenizer's chat template. The first user message starts
with the markers `<motion></motion>`; after tokenization the motion's code ids (`motion_token_offset + code`) are
spliced between them. Each part of a conversation (the motion prefix, a question, an answer) is tokenized on its own,
as the string difference between consecutive renderings of the template, so training and answering see exactly the
same token ids and a motion's prefix can be computed once and cached.

The processor also carries what the training corpus taught about the tasks: the kind of each task (closed set,
numeric or free text), the answer sentence for each label of a closed-set task, the unit of each numeric task and
example questions per task (to route a free question to a task).

This file imports only numpy, torch, transformers and sibling files so it can be uploaded to the Hub as remote code.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hashlib

import numpy as np
import torch
from transformers import AutoProcessor
from transformers.processing_utils import ProcessorMixin

from .motion_descriptors import ENCODER_DESCRIPTORS, motion_descriptors

__all__ = [
    "BiomechGPTProcessor",
    "QuestionRoute",
    "DEFAULT_CHAT_TEMPLATE",
    "CHAT_SPECIAL_TOKENS",
    "EVERYDAY_WORDINGS",
    "TASK_CUES",
    "TASK_TITLES",
    "prepare_text_tokenizer",
    "register_auto_classes",
]

# Used when a text tokenizer has no chat template (e.g. a base model, or the embedded `tiny` tokenizer).
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
CHAT_SPECIAL_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
TASK_KINDS = ("closed", "numeric", "free")
MOTION_INPUTS = ("codes", "continuous", "both")
FRAMES_PER_CODE = 4  # canonical frames per MotionTokenizer code: the feature window matches the code window
MOTION_CODES_FOLDER = "motion_tokenizer"
_CORPUS_PARSER_MODULE = "biomechgpt.dataset_builder"

_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")
_WORD = re.compile(r"[a-z0-9]+")

# How an answer names a task to a user (a refusal lists them, a routing note names the one taken).
TASK_TITLES: dict[str, str] = {
    "activity": "the activity",
    "impairment": "whether the movement is impaired",
    "impairment_side": "the affected side",
    "diagnosis": "the likely diagnosis",
    "assistive_device": "the assistive device",
    "fall_history": "a history of falls",
    "cadence": "cadence",
    "walking_speed": "walking speed",
    "stride_length": "stride length",
    "tug_time": "the Timed Up and Go time",
    "fsst_time": "the Four Square Step Test time",
    "summary": "a summary of the trial",
}

# Words and phrases that tie a free question to a task, in a clinician's or a patient's words: the corpus's example
# questions cover only the phrasings the model was trained on, and the nearest of them is a task even for "What is the
# weather today?". A cue word ending in "*" matches every word it begins ("impair*": impaired, impairment), others
# match the word and its inflections ("step": steps, stepping), also after "un" or "non" ("unimpaired"); a cue of
# several words matches them in a row. A cue with a leading "+" is clinical vocabulary and counts on its own; the
# others ("speed", "which side", "how long") count only in a question that also names a movement, a body part or a
# recording (`_ANCHORS`) or points at the recorded person ("his speed"; `_POINTS_AT_THE_RECORDING`), so "What's the
# speed of light?" is refused.
TASK_CUES: dict[str, tuple[str, ...]] = {
    "activity": ("+activity", "+activities", "+exercise", "+what test", "+which test", "+what task", "+which task",
                 "what movement", "which movement", "type of", "kind of", "doing", "happening", "going on",
                 "+running or walking", "+walking or running", "+squat*", "+jump*", "+stair*", "+sit to stand",
                 "+standing up", "+sitting down", "+balance", "+tandem", "+heel to toe", "in a line", "+turning",
                 "+climb*", "is this walking", "is this running", "+jog*", "+sprint*", "+hop*", "turn",
                 "+on the spot", "going up", "going down", "+sport*", "running", "trying to do", "+standing still",
                 "+standing"),
    "impairment": ("+impair*", "+abnormal*", "+limp*", "+pathological", "+gait problem", "+gait disorder",
                   "normal*", "unusual", "healthy", "typical", "affected", "atypical", "+deviation*",
                   "+movement disorder", "look off", "looks off", "wrong", "+unremarkable", "problem*", "trouble",
                   "difficult*", "quality", "stiff*", "awkward*", "clumsy", "jerky", "shuffl*"),
    "impairment_side": ("which side", "+which leg", "+which limb", "+left or right", "+left or the right",
                        "+right or left", "+right leg", "+left leg", "+one side", "+favour*", "+favor*", "+weaker",
                        "+asymmetr*", "+more involved", "+affected side", "side", "left", "right", "+lateralised",
                        "+hemipar*", "+right side", "+left side", "+both sides", "+bad side", "+good side",
                        "+which foot", "+which feet"),
    "diagnosis": ("+diagnos*", "+condition", "+disease", "+parkinson*", "+stroke", "+cerebral palsy", "+amputee",
                  "+amputation", "+arthritis", "+osteoarthritis", "+spinal cord", "+sci", "+wrong with",
                  "+pathology", "+disorder", "+illness", "+clinical population", "+kind of patient",
                  "+type of patient", "+ms", "+multiple sclerosis", "+neurolog*", "+orthop*", "+musculoskeletal",
                  "+neuromuscular", "+ataxi*", "+neuropath*", "+dystoni*", "+spastic*", "+dipleg*", "+huntington*",
                  "+dementia", "+polio*", "+spina bifida", "+muscular dystrophy", "+scoliosis", "+joint replacement",
                  "+hip replacement", "+knee replacement", "+sclerosis", "+vestibular", "+aetiology", "+etiology",
                  "+dx", "+ddx", "caus*"),
    "assistive_device": ("+cane", "+walker", "+crutch*", "+brace", "+orthosis", "+orthotic*", "+afo", "+aid",
                         "+assistive", "+device", "+stick", "+rollator", "+walking frame"),
    "fall_history": ("+fall*", "+fell", "+faller*", "+tumbl*", "+toppl*"),
    "cadence": ("+cadence", "+cadance", "+steps per minute", "+step per minute", "+steps a minute", "+step rate",
                "+step frequency", "+stepping rate", "+stepping", "+spm", "+steps min", "per minute", "+steps per min",
                "each minute", "a minute"),
    "walking_speed": ("speed", "+walking speed", "+gait speed", "+speed of progression", "how fast", "how quick*",
                      "velocity", "+m s", "+km h", "+metres per second", "+meters per second", "+kilometres per hour",
                      "+kilometers per hour", "pace", "quickly", "slowly", "slow"),
    "stride_length": ("+stride*", "+step length", "how far", "how big", "distance", "+cm", "+centimetres",
                      "+centimeters", "+gait cycle", "how long are", "how long is each", "length"),
    "tug_time": ("+timed up and go", "+up and go", "+tug", "get up", "sit back down", "+completion time",
                 "how long did", "how many seconds"),
    "fsst_time": ("+four square*", "+fsst", "+4sst", "+4 square*", "+square step", "+completion time", "how long did",
                  "how many seconds"),
    "summary": ("+summar*", "+sum up", "describe", "+description", "+overview", "tell me about", "+report",
                "+impression*", "+findings", "+overall", "what do you see", "what you see", "+in a nutshell",
                "write up", "+observation*", "+notes", "stands out", "stand out"),
}
_ANCHORS = ("walk*", "run*", "step*", "mov*", "motion", "gait", "leg", "legs", "foot", "feet", "limb*", "body",
            "person", "patient*", "subject", "participant*", "trial", "recording", "recorded", "clip", "file", "video",
            "test", "clinical", "problem", "trunk", "knee*", "hip*", "ankle*", "arm*", "stride*", "pattern",
            "affected", "impair*", "weak*", "involved", "progression", "get", "sit")
# Everyday wordings and the clinical words the cues know them by: a clinician or a patient says "what is she up to",
# "which half of the body", "walking support" or "at what rate are the steps taken" where the cues say "doing", "which
# side", "aid" and "cadence". Each pattern is a regular expression over the lower-cased question (hyphens as spaces),
# applied in order before the cues are matched. Only routing reads the rewording: the model is asked its task's own
# question and the user sees theirs.
EVERYDAY_WORDINGS: tuple[tuple[str, str], ...] = (
    # the TUG told step by step, with its time asked ("how many seconds did it take him to get up from the chair,
    # walk to the line, turn back and sit down?"): before "get up from the chair" becomes a sit-to-stand
    (r"\b(?:how (?:many seconds|long)|time)\b(?=.*\b(?:get|gets|getting|got|stand|stands|rise|rises) up\b.*"
     r"\bwalk\w*\b.*\b(?:turn\w*|sit\w* (?:back )?down)\b)", r"\g<0> up and go"),
    # activity: what the person is doing
    (r"\bup to\b(?! ?\d)", "doing"),
    (r"\b(?:carry|carries|carrying|carried) out\b|\bengaged in\b|\bbusy with\b", "doing"),
    (r"\b(?:get|gets|getting|got|rise|rises|rising|stand|stands|standing) up (?:out of|from|off) (?:a|the|his|her|"
     r"their) (?:chair|seat|stool)\b", "sit to stand"),
    (r"\b(what|which) (?:kind|type|sort) of (?=(?:task|test)s?\b)", r"\1 "),
    (r"\b(?:identify|name|classify|recogni[sz]e) (?:the |this )?(?:motion|movement|activity|task|exercise)\b",
     "which activity"),
    (r"\b(?:asked|instructed|told|supposed|meant) to do\b", "doing"),
    (r"\btasks?\b", "activity"),
    (r"\bwhat (?:did|do|have) (?:we|you|they) (?:record|capture|film)\w*\b|\bwhat (?:was|is|got) (?:recorded|captured|"
     r"filmed)\b", "what is it doing"),
    (r"\bwhat (?:did|does|do|is|was) (?:the \w+|he|she|they|this person) (?:do|doing)\b", "what is it doing"),
    # a movement named as the kind of trial, or set against another ("a walking trial or something else?", "did they
    # do a TUG or just level walking?")
    (r"\b(?:walking|running|jogging|squat|squatting|jump|jumping|hopping|stairs?|balance|turning|gait|sit to stand) "
     r"(?:trial|task|recording|clip|session)s? or\b|\bor (?:just |simply |only )?(?:level |plain |ordinary |normal )?"
     r"(?:walking|running|standing|squatting|jumping)\??$", "activity"),
    (r"\b(?:{0})(?: \w+){{0,3}} or (?:\w+ ){{0,2}}(?:{0})\b".format(
        "walking|running|jogging|standing|sitting|squatting|jumping|hopping|turning|stepping|climbing|marching"),
     "activity"),
    # impairment: is anything wrong with how they move ("what is wrong with him" stays a diagnosis question)
    (r"\b(?:is|are|was) (?:there )?(?:anything|something) (?:wrong|off|amiss|not right)\b|"
     r"^(?:(?:is )?(?:there )?)?(?:anything|something) (?:off|amiss|not right)\b", "is it abnormal"),
    (r"^(?:so,? |and |is it |is this |is that )?(?:normal|typical|abnormal|atypical) or not\b", "is this abnormal"),
    (r"\b(?:wrong|problems?|issues?|trouble|difficult(?:y|ies)) with (?:how|the way)\b", "abnormal"),
    (r"\b(?:amiss|odd|strange|weird|peculiar|irregular)\b", "unusual"),
    (r"\b(?:deficits?|dysfunction|disabilit(?:y|ies)|handicap)\b", "impairment"),
    (r"\bdisturb\w*", "impairment"),
    (r"\b(?:ok|okay|alright|all right)\b", "normal"),
    # impairment side: a half of the body, one-sided
    (r"\b(?:which|what|one|either|the other|left|right) half\b|\bhalf of (?:the|his|her|their) body\b",
     "side"),
    (r"\b(?:one ?sided|unilateral(?:ly)?|lopsided)\b", "on one side"),
    (r"\blaterality\b", "which side"),
    (r"\bhemi ?(?:body|side)\b", "side"),
    (r"\b(which|what) (?:lower|upper) (?:limb|leg|extremity)\b|\b(which|what) extremity\b", r"\1\2 limb"),
    (r"\b(?:protect\w*|guard\w*|spar(?:e|es|ed|ing))\b", "favour"),
    (r"\b(?:than|compared (?:to|with)|versus|vs) the other(?: one| leg| side| limb| foot)?\b", "one side"),
    # "on his left" names a side, "in his right hand" does not
    (r"\b(?:on|to|in) (?:the|his|her|their) (left|right)\b(?! (?:hand|arm|elbow|shoulder|wrist)\b)",
     r"on the \1 side"),
    (r"\b(?:less|more|most|least|uneven|unequal) weight\b|\bweight (?:on|through) (?:one|the other)\b", "favour"),
    (r"\bbilateral(?:ly)?\b(?! (?:forearm |elbow )?crutch)", "both sides"),
    (r"\bsymmetr\w*", "asymmetry"),
    # a difference between the sides or the legs
    (r"\bside to side\b|\bleft (?:to |and |versus |vs )?right\b|\bright (?:to |and |versus |vs )?left\b|"
     r"\b(?:between|across) (?:the |his |her |their )?(?:two |both )?(?:sides|legs|limbs|feet)\b", "asymmetry"),
    (r"^(?=.*\b(?:sides?|legs?|limbs?|feet|foot)\b)(.*?)\b(?:worse|poorer|less good|more affected)\b", r"\1weaker"),
    # assistive device: walking support, help, equipment
    (r"\b(?:walking|mobility|gait|external|physical) (?:support|help|equipment|gear)\b", "walking aid"),
    (r"\b(with|without|uses?|using|used|needs?|needing|requires?|relies on|rely on) (?:any |some |a |an )?"
     r"(?:support|help|equipment|gear|gadget)\b", r"\1 aid"),
    (r"\b(?:wheelchair|zimmer|splint|insoles?)\b", "device"),
    (r"\b(?:unaided|unassisted|independently)\b", "without an aid"),
    (r"\b(?:hold|holds|holding|held|grip|grips|gripping|lean|leans|leaning) (?:on ?to |on )?(?:anything|something)\b|"
     r"\bhelp (?:(?:him|her|them|the \w+) )?(?:to )?walk\b", "aid"),
    # cadence: the rate, tempo, rhythm or frequency of the steps
    (r"^(?=.*\b(?:foot ?steps?|steps?|stepping|footfalls?)\b)(.*?)\b(?:rate|tempo|rhythm|frequency|how often|"
     r"how frequently)\b", r"\1cadence"),
    (r"\bhow many (?:steps )?(?:a|per|each|every) minute\b", "steps per minute"),
    # how quickly the steps come is their rate, not the walking speed
    (r"\bhow (?:quickly|fast|rapidly) (?:are|do|does|did|is|was) (?:the |his |her |their |its )?(?:foot ?)?steps?\b"
     r"(?! (?:long|length))|\bhow (?:quickly|fast|rapidly) (?:do|does|did) (?:he|she|they|the \w+) step\b", "cadence"),
    # walking speed: miles per hour, a slow walker
    (r"\b(?:mph|miles (?:per|an|a) hour)\b", "km/h"),
    (r"\b(?:slow|fast|quick|brisk)(?:er)? walkers?\b", "walking speed"),
    (r"\b(?:slower|faster|quicker|speedier)\b", "speed"),
    # stride length: the size of a step
    (r"\b(?:step|stride) size\b|\bsize of (?:a |each |the )?(?:step|stride)s?\b", "step length"),
    (r"\blength of (?:a |each |one |the |their |his |her )?(?:step|stride)s?\b", "stride length"),
    (r"\b(?:how much|the) ground\b(?=.*\b(?:steps?|strides?)\b)|"
     r"\b(?:steps?|strides?)\b.*\bcover\w* (?:much |more |less )?ground\b", "step length"),
    (r"\b(?:short|long|small|big|large|tiny|little)(?:er)? (?:steps?|strides?)\b|"
     r"\b(?:steps?|strides?) (?:\w+ ){0,2}(?:short|long|small|big|large|tiny)(?:er)?\b", "step length"),
    # summary: a note, recap or account of the trial
    (r"\b(?:synopsis|recap|rundown|gist|write ?up|tl ?;? ?dr)\b", "summary"),
    (r"\b(?:everything|anything) (?:notable|noteworthy|worth noting|important|relevant)\b|"
     r"\bwhat(?:'s| is) (?:notable|noteworthy|worth noting)\b|"
     r"\b(?:the )?(?:big|overall|whole) picture\b|"
     r"\b(?:everything|all) (?:you can (?:tell|say|see)?|you know|there is to (?:know|say))\b", "summary"),
    (r"\b(?:clinical|short|brief|quick) (?:note|account|assessment|paragraph)\b", "summary"),
    (r"\bwhat (?:do |did |can )?you (?:observe|notice|see|make of)\b", "your observations"),
)
_EVERYDAY = tuple((re.compile(pattern), clinical) for pattern, clinical in EVERYDAY_WORDINGS)
# A name of a label of these tasks in a question ("knee OA", "CVA", "a frame", "unaided", "both legs";
# `label_names`) is read as the task's clinical words. "healthy" and "control" stay everyday words, "hemiparesis" also
# names a side, and "left", "right" and "both" say too little alone.
_LABEL_NAMES_NAME = {"diagnosis": "diagnosis", "assistive_device": "assistive device",
                     "impairment_side": "affected side"}
_NOT_LABEL_NAMES = frozenset({"healthy", "control", "hemiparesis", "hemiparetic", "left", "right", "both"})
_CORPUS_LEXICON_MODULE = "biomechgpt.dataset_builder"
# The words that name the recording or the recorded person themselves (a pronoun adds "he", "his", ...).
_RECORDING_WORDS = r"this|these|here|patients?|subjects?|participants?|person|recording|trial|clip|file|video"
# A question about an animal, a product or what a kind of being can do ("How fast can a cheetah run?", "Which running
# shoe should I buy?"), and not about the recorded person, is refused.
_OTHER_SUBJECTS = re.compile(
    r"\b(?:recommend\w*|buy|buying|purchase\w*|shop|shopping|prices?|brands?|shoes?|trainers|sneakers|footwear|"
    r"boots?)\b|"
    # sport and its records ("How fast does the world's fastest man run?")
    r"\b(?:world'?s? (?:records?|\w+est)|olympi\w*|athletes?|sprinters?|footballers?)\b|"
    # what a kind of being can do ("How fast does a greyhound run?", "How far can a human walk?", "Why do people
    # limp?")
    r"\b(?:how \w+|why) (?:can|could|does|do|will|would) (?:a|an|the average|most|humans?|people|someone|anyone)\b|"
    # advice for the asker ("How do I improve my running?", "What is the best exercise for knee pain?")
    r"\bhow (?:do|should) (?:i|we)\b|\bshould (?:i|we)\b|\bbest (?:\w+ )?(?:for|to)\b")
# An animal is refused unless the question names the recording or the recorded person itself: a pronoun does not
# ("My dog limps on his back leg, what is wrong with his gait?").
_ANIMALS = re.compile(
    r"\b(?:animals?|pets?|cheetahs?|horses?|ponies|pony|dogs?|puppy|puppies|cats?|kittens?|cows?|birds?|lions?|"
    r"tigers?|elephants?|rabbits?|mice|mouse|insects?|spiders?|ants?|fish|snakes?|monkeys?|apes?|bears?|wolf|wolves|"
    r"deer|kangaroos?|ostrich(?:es)?|penguins?|ducks?|chickens?|pigs?|sheep|goats?|camels?|giraffes?|zebras?|frogs?|"
    r"hummingbirds?|greyhounds?)\b")
# Someone the asker knows who is not said to be recorded ("My neighbour walks with a limp, what do you think he
# has?"): refused unless the question names the recording itself. "my dad", "my mum" are, in practice, the person a
# family member recorded.
_SOMEONE_ELSE = re.compile(
    r"\b(?:my|our|a) (?:neighbou?rs?|friends?|colleagues?|co ?workers?|boss|flatmates?|roommates?|classmates?|"
    r"teammates?|acquaintances?)\b")
_THE_RECORDING_ITSELF = re.compile(rf"\b(?:{_RECORDING_WORDS})\b")
# General knowledge, not about anyone recorded ("What are the main symptoms of Parkinson's disease in general?", "How
# long does it usually take to recover from a hip replacement?"): refused unless the question points at the recording.
_GENERAL_KNOWLEDGE = re.compile(
    r"\bin general\b|\bgenerally\b|\bon average\b|\b(?:usually|typically|normally) (?:take|takes|last|lasts)\b|"
    r"\bwhat are the (?:\w+ )?(?:symptoms|signs|causes|treatments)\b|\b(?:main|common|typical|usual|early|first) "
    r"(?:symptoms|signs|causes)\b|\brecover\w* from\b|"
    # populations ("What is a normal walking speed for healthy adults?", "the average TUG time for people over 80",
    # "How many people in the UK have knee osteoarthritis?") and causes ("what causes Parkinson's disease?")
    r"\bfor (?:(?:healthy|older|elderly|young|most|all|normal|typical) )?(?:adults|people|men|women|children|kids|"
    r"seniors|pensioners|the elderly|elderly people|athletes|runners|patients)\b|"
    r"\b(?:people|adults|men|women|children|patients) (?:over|under|aged|above|below|older than|younger than)\b|"
    r"\bhow (?:many|much of the) (?:people|adults|patients)\b|\bwhat causes\b|\bcauses of\b")
# A person named with a title ("Mrs Jones") is the recorded one; a question about anyone else named ("How fast can
# Usain Bolt run?") is refused unless it points at the recording too.
_TITLED_NAME = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.? [A-Z][\w']*(?: [A-Z][\w']*)?")
_CAPITALISED = re.compile(r"\b[A-Z][a-z][\w']*")
_EPONYM_OF = re.compile(r"(?:'s)? (?:disease|syndrome|palsy|test|scale|sign|gait|walk|ataxia|chorea)\b")
_ABOUT_THE_RECORDING = re.compile(rf"\b(?:{_RECORDING_WORDS}|he|she|they|him|her|them|his|their)\b")
# Words that point at the recorded person or the recording ("they" does not: "which side do they drive on"; "this"
# does unless it is the model or the chat): a weak cue counts in a question that has one.
_POINTS_AT_THE_RECORDING = re.compile(
    r"\b(?:(?:this|these)(?! (?:model|ai|assistant|chatbot|bot|app|tool|software|program|system|website|page|"
    r"question|conversation|chat)\b)|here|he|she|him|her|his|patients?|subjects?|participants?|person|recording|"
    r"recorded|trial|clip|file|video|footage|session|capture[sd]?)\b")
# Words every question shares: example questions agree on them whatever the task.
_STOP_WORDS = frozenset(
    "a an the is are was were be been do does did this that these those what which who how of in on at for to with "
    "and or any it its there here you your me my i s person participant patient subject they them their he she his "
    "her trial recording motion movement please can could would will give tell estimate show shows".split())
# A question whose best task scores at least this share of its best score is a second reading: the answer says
# which task it took.
AMBIGUOUS_SHARE = 0.75
# Everyday cues too loose to count in a question that only points at the recording ("is this the right place?"):
# they need a movement or a body part.
_BODY_CUES = frozenset({"left", "right", "side"})
# Words a question about the movement names, when it names no body part or recording.
_MOVEMENT_WORDS = ("walk*", "run*", "step*", "stride*", "mov*", "motion", "gait", "pattern")
# Words that say nothing of a task, left out of the vocabulary fallback (`_vocabulary_similarity`): function words,
# the verbs the corpus's questions ask with ("name", "classify", "provide"), words of the recording itself, and words
# of a label name that are everyday English ("quiet standing", "a pair of crutches", "a single-point cane").
_FILLER_WORDS = _STOP_WORDS | frozenset(
    "am has have had being not no yes if as by from into about during after before than then so just only also very "
    "some all every other else something anything way kind type sort look looks looking seem seems seen see saw "
    "think say said know let get got one two name classify identify provide based likely most might suggest explain "
    "explains fit fits known belong shown try trying place clearly within expect never t hasn isn doesn didn wasn "
    "out each per session clip file video footage capture captured take taken took need needed back up down still "
    "quiet level line point single pair short brief post user lower loss control four five 360 degree repeated "
    "previous".split())
# Without a cue, a question about the recording or the movement goes to the task whose vocabulary holds more than
# this share of its words.
FALLBACK_SHARE = 0.5


@dataclass(frozen=True)
class QuestionRoute:
    """Where [`BiomechGPTProcessor.route_question`] sends a question.

    Args:
        task (`str` or `None`): the task taken; `None` when the question is none the model can answer.
        score (`float`): the evidence for it (matched cue words, plus the similarity to the nearest example; for a
            question without a cue, the share of its words the task's vocabulary holds).
        alternatives (`tuple[str, ...]`): other tasks the question could be about (nearly as strong), best first.
    """

    task: str | None
    score: float = 0.0
    alternatives: tuple[str, ...] = ()

    @property
    def ambiguous(self) -> bool:
        return bool(self.alternatives)


def _cue_pattern(cue: str) -> tuple[bool, tuple[str, ...]]:
    strong = cue.startswith("+")
    return strong, tuple(cue.lstrip("+").split())


def _plain_text(question: str) -> str:
    """`question` lower case, hyphens as spaces, single-spaced, a person named with a title ("Mrs Jones") as "the
    patient": what the refusal patterns and the router read."""
    return " ".join(_TITLED_NAME.sub("the patient", question).lower().replace("-", " ").split())


def _stem(word: str) -> str:
    """`word` without an inflection ending: "stepping", "steps" -> "step"; "paced", "pace" -> "pac"."""
    for ending in ("ing", "ed", "es", "s"):
        if word.endswith(ending) and len(word) - len(ending) >= 3 and not word.endswith("ss"):
            word = word[:-len(ending)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeioulsfz":  # stepp -> step, not fall -> fal
        word = word[:-1]
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


@functools.lru_cache(maxsize=1 << 16)  # routing asks it ~1,700 times per question, mostly about the same words
def _word_matches(pattern: str, word: str) -> bool:
    """Whether a cue word (`pattern`, a prefix when it ends in "*") matches `word` or one of its inflections
    ("steps", "stepping", "paced" match "step" and "pace"; "stepping" matches only itself), also after a negating
    "un" or "non" ("unimpaired", "nonfaller")."""
    if _matches(pattern, word):
        return True
    for negation in ("non", "un"):
        if word.startswith(negation) and len(word) - len(negation) >= 4:
            return _matches(pattern, word[len(negation):])
    return False


def _matches(pattern: str, word: str) -> bool:
    if pattern.endswith("*"):
        return word.startswith(pattern[:-1])
    if word == pattern:
        return True
    for ending in ("ing", "ed", "es", "s"):
        if word.endswith(ending) and len(word) - len(ending) >= 2:
            base = word[:-len(ending)]
            return pattern in (base, base + "e") or (base[-1] == base[-2] and pattern == base[:-1])
    return False


@functools.lru_cache(maxsize=1 << 16)  # the same question's words meet every cue of every task
def _phrase_in(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(all(_word_matches(p, w) for p, w in zip(phrase, words[k:k + n])) for k in range(len(words) - n + 1))


MAX_NUMERIC_CANDIDATES = 1000


def _check_numeric_answers(task: str, specs: Any) -> list[dict[str, Any]]:
    """A validated copy of one task's `numeric_answers` entry (a list of wordings)."""
    if not isinstance(specs, (list, tuple)) or not specs:
        raise ValueError(f"numeric_answers[{task!r}]: needs a non-empty list of wordings")
    checked = [_check_numeric_wording(f"numeric_answers[{task!r}][{k}]", spec) for k, spec in enumerate(specs)]
    if sum(_grid_size(s) for s in checked) > MAX_NUMERIC_CANDIDATES:
        raise ValueError(f"numeric_answers[{task!r}]: more than {MAX_NUMERIC_CANDIDATES} values in all")
    return checked


def _check_numeric_wording(name: str, spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict) or not {"template", "decimals", "low", "high", "step", "scale"} <= set(spec):
        raise ValueError(f"{name}: needs template, decimals, low, high, step and scale")
    template = str(spec["template"])
    if template.count("{}") != 1 or template.count("{") != 1 or template.count("}") != 1:
        raise ValueError(f"{name}: the template must hold exactly one {{}} for the number, got {template!r}")
    decimals, low, high, step = int(spec["decimals"]), float(spec["low"]), float(spec["high"]), float(spec["step"])
    scale = float(spec["scale"])
    if not (0 <= decimals <= 6 and math.isfinite(low) and math.isfinite(high) and low <= high and step > 0):
        raise ValueError(f"{name}: needs 0 <= decimals <= 6, finite low <= high and step > 0")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"{name}: scale must be a positive number, got {spec['scale']!r}")
    checked = {"template": template, "decimals": decimals, "low": low, "high": high, "step": step, "scale": scale}
    if _grid_size(checked) > MAX_NUMERIC_CANDIDATES:
        raise ValueError(f"{name}: more than {MAX_NUMERIC_CANDIDATES} values from {low} to {high} by {step}")
    return checked


def _grid_size(spec: dict[str, Any]) -> int:
    """Number of values of a wording's grid, `low` to `high` in steps of `step`."""
    return int(round((spec["high"] - spec["low"]) / spec["step"])) + 1


def _shared_suffix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the token suffix all `sequences` share, leaving each at least one token of its own."""
    if len(sequences) < 2:
        return 0
    limit = min(len(seq) for seq in sequences) - 1
    length = 0
    while length < limit and all(seq[-1 - length] == sequences[0][-1 - length] for seq in sequences):
        length += 1
    return length


def prepare_text_tokenizer(tokenizer: Any) -> Any:
    """Give a text tokenizer what a conversation needs: a chat template (the default one when it has none, with its
    role markers added as special tokens) and a padding token. Call before extending a model's vocabulary."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.add_tokens(list(CHAT_SPECIAL_TOKENS), special_tokens=True)
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else CHAT_SPECIAL_TOKENS[-1]
    return tokenizer


class BiomechGPTProcessor(ProcessorMixin):
    r"""
    Turns (motion, conversation) into `input_ids` / `attention_mask` for [`BiomechGPTForCausalLM`] and back.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): the text tokenizer, already holding the `<motion>` / `</motion>`
            markers (see [`BiomechGPTForCausalLM.from_language_model`]) and a chat template.
        motion_tokenizer (`MotionTokenizer`, *optional*): turns a `Motion` or motion file into codes. Without it the
            processor accepts motion codes only.
        chat_template (`str`, *optional*): overrides the tokenizer's template.
        motion_token_offset (`int`, *optional*): id of motion code 0. Defaults to `len(tokenizer)`.
        codebook_size (`int`, *optional*): number of motion codes; taken from the motion tokenizer when omitted.
        max_motion_codes (`int`, *optional*, defaults to 256): longer code sequences are cropped to their middle
            `max_motion_codes` codes (256 codes are 34 s of motion at 7.5 codes per second).
        motion_start_token (`str`, *optional*, defaults to `"<motion>"`): start marker.
        motion_end_token (`str`, *optional*, defaults to `"</motion>"`): end marker.
        task_kinds (`dict[str, str]`, *optional*): task → `"closed"`, `"numeric"` or `"free"`.
        answer_candidates (`dict[str, dict[str, str]]`, *optional*): closed-set task → label → answer sentence.
        answer_log_priors (`dict[str, dict[str, float]]`, *optional*): closed-set task → label → log of the share of
            that label's training answers that are exactly its candidate sentence. The corpus words one label many
            ways; dividing the candidate's likelihood by this share estimates the probability of the label itself.
        task_units (`dict[str, str]`, *optional*): numeric task → unit of its answers.
        numeric_answers (`dict[str, list[dict]]`, *optional*): numeric task → its answer wordings, each `{"template":
            str, "decimals": int, "low": float, "high": float, "step": float, "scale": float}`: an answer sentence with
            `{}` for the number, the grid of numbers the model scores, and the factor from that wording's unit to the
            task's unit (`task_units`). The first wording is in the task's unit and words the answers; the others
            (e.g. km/h next to m/s) let the model's belief in every unit count (see
            [`~BiomechGPTProcessor.numeric_candidates`]). Tasks without wordings are answered by greedy decoding.
        task_questions (`dict[str, list[str]]`, *optional*): task → example questions, to route a new question.
        label_names (`dict[str, dict[str, list[str]]]`, *optional*): closed-set task → label → the names the corpus
            gives that label (training saves them from `dataset_builder.label_names`): a question naming a diagnosis,
            a device or a side ("knee OA", "a zimmer frame", "both legs") is routed to its task, and a question
            without a cue word is compared with every task's label names ("a romberg": the activity). When `None` (a
            processor saved before they were), they are read from the QA corpus's lexicon if the biomechgpt package
            is installed, and are none otherwise; `save_pretrained` writes the names the router read.
        motion_input (`str`, *optional*, defaults to `"codes"`): what the model reads of a motion (see
            `BiomechGPTConfig.motion_input`): the prefix holds the codes, `num_motion_tokens` placeholders for the
            motion encoder's soft tokens, or both (placeholders first).
        num_motion_tokens (`int`, *optional*, defaults to 16): placeholders per motion.
        motion_feature_token (`str`, *optional*, defaults to `"<motion_features>"`): the placeholder token.
        motion_descriptors (`bool`, *optional*, defaults to `False`): with continuous input, also compute the whole
            recording's trial-level descriptors (`motion_descriptors.motion_descriptors`) for a motion encoder that
            reads them (`BiomechGPTConfig.motion_descriptor_size`).
    """

    def __init__(
        self,
        tokenizer: Any = None,
        motion_tokenizer: Any = None,
        chat_template: str | None = None,
        motion_token_offset: int | None = None,
        codebook_size: int | None = None,
        max_motion_codes: int = 256,
        motion_start_token: str = "<motion>",
        motion_end_token: str = "</motion>",
        task_kinds: dict[str, str] | None = None,
        answer_candidates: dict[str, dict[str, str]] | None = None,
        answer_log_priors: dict[str, dict[str, float]] | None = None,
        task_units: dict[str, str] | None = None,
        task_questions: dict[str, list[str]] | None = None,
        numeric_answers: dict[str, list[dict[str, Any]]] | None = None,
        label_names: dict[str, dict[str, list[str]]] | None = None,
        motion_input: str = "codes",
        num_motion_tokens: int = 16,
        motion_feature_token: str = "<motion_features>",
        motion_descriptors: bool = False,
        **kwargs: Any,
    ) -> None:
        if tokenizer is None:
            raise ValueError("BiomechGPTProcessor needs a text tokenizer")
        chat_template = chat_template or getattr(tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE
        super().__init__(tokenizer, chat_template=chat_template)
        self.motion_tokenizer = motion_tokenizer
        self.motion_start_token = motion_start_token
        self.motion_end_token = motion_end_token
        self.motion_start_token_id = tokenizer.convert_tokens_to_ids(motion_start_token)
        self.motion_end_token_id = tokenizer.convert_tokens_to_ids(motion_end_token)
        if self.motion_end_token_id in (None, tokenizer.unk_token_id):
            raise ValueError(f"the text tokenizer has no {motion_end_token!r} token; build it with "
                             "BiomechGPTForCausalLM.from_language_model")
        self.motion_token_offset = int(motion_token_offset if motion_token_offset is not None else len(tokenizer))
        if codebook_size is None and motion_tokenizer is not None:
            codebook_size = motion_tokenizer.codebook_size
        self.codebook_size = int(codebook_size) if codebook_size is not None else None
        if max_motion_codes < 1:
            raise ValueError(f"max_motion_codes must be at least 1, got {max_motion_codes}")
        self.max_motion_codes = int(max_motion_codes)
        if motion_input not in MOTION_INPUTS:
            raise ValueError(f"motion_input must be one of {MOTION_INPUTS}, got {motion_input!r}")
        self.motion_input = motion_input
        self.num_motion_tokens = int(num_motion_tokens)
        self.motion_feature_token = motion_feature_token
        self.motion_feature_token_id = None
        if not isinstance(motion_descriptors, bool):
            raise ValueError(f"motion_descriptors must be true or false, got {motion_descriptors!r}")
        if motion_descriptors and motion_input == "codes":
            raise ValueError("motion_descriptors needs a model that reads continuous motion (motion_input 'codes')")
        self.motion_descriptors = motion_descriptors
        if motion_input != "codes":
            if self.num_motion_tokens < 1:
                raise ValueError(f"num_motion_tokens must be at least 1, got {num_motion_tokens}")
            self.motion_feature_token_id = tokenizer.convert_tokens_to_ids(motion_feature_token)
            if self.motion_feature_token_id in (None, tokenizer.unk_token_id):
                raise ValueError(f"the text tokenizer has no {motion_feature_token!r} token; build the model with "
                                 f"BiomechGPTForCausalLM.from_language_model(..., motion_input={motion_input!r})")
        self.task_kinds = dict(task_kinds or {})
        for task, kind in self.task_kinds.items():
            if kind not in TASK_KINDS:
                raise ValueError(f"task_kinds[{task!r}] must be one of {TASK_KINDS}, got {kind!r}")
        self.answer_candidates = {t: dict(c) for t, c in (answer_candidates or {}).items()}
        self.answer_log_priors = {t: {k: float(v) for k, v in p.items()} for t, p in (answer_log_priors or {}).items()}
        self.task_units = dict(task_units or {})
        self.task_questions = {t: list(q) for t, q in (task_questions or {}).items()}
        self.numeric_answers = {t: _check_numeric_answers(t, specs) for t, specs in (numeric_answers or {}).items()}
        self.label_names = None if label_names is None else {
            t: {str(label): [str(n) for n in names] for label, names in labels.items()}
            for t, labels in label_names.items()}
        self._label_name_index: tuple[dict[str, str], re.Pattern | None] | None = None
        self._corpus_label_names: dict[str, dict[str, list[str]]] | None = None
        self._vocabulary_index: dict[str, tuple[set[str], tuple[str, ...]]] | None = None
        self._candidate_cache: dict[str, dict[str, list[int]]] = {}
        self._numeric_cache: dict[str, tuple[list[float], list[list[int]]]] = {}
        self._question_index: tuple[dict[str, float], list[tuple[str, set[str]]]] | None = None
        self._stop_ids: set[int] | None = None

    # -- serialisation ---------------------------------------------------------------------------------------------
    @classmethod
    def get_attributes(cls) -> list[str]:
        # The MotionTokenizer is not a text tokenizer: we save and load it ourselves (under motion_tokenizer/).
        return ["tokenizer"]

    def to_dict(self) -> dict[str, Any]:
        out = {
            "processor_class": self.__class__.__name__,
            "motion_token_offset": self.motion_token_offset,
            "codebook_size": self.codebook_size,
            "max_motion_codes": self.max_motion_codes,
            "motion_start_token": self.motion_start_token,
            "motion_end_token": self.motion_end_token,
            "task_kinds": self.task_kinds,
            "answer_candidates": self.answer_candidates,
            "answer_log_priors": self.answer_log_priors,
            "task_units": self.task_units,
            "task_questions": self.task_questions,
            "numeric_answers": self.numeric_answers,
            "label_names": self.routing_label_names,
            "motion_input": self.motion_input,
            "num_motion_tokens": self.num_motion_tokens,
            "motion_feature_token": self.motion_feature_token,
            "motion_descriptors": self.motion_descriptors,
        }
        if "auto_map" in self.__dict__:
            out["auto_map"] = self.__dict__["auto_map"]
        return out

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> list:
        """Save the text tokenizer and `processor_config.json` into `save_directory`, and the MotionTokenizer into
        `save_directory/motion_tokenizer/`."""
        files = super().save_pretrained(save_directory, push_to_hub=False, **kwargs)
        if self.motion_tokenizer is not None:
            self.motion_tokenizer.save_pretrained(os.path.join(save_directory, MOTION_CODES_FOLDER))
        if push_to_hub:
            from huggingface_hub import upload_folder

            upload_folder(repo_id=kwargs.get("repo_id", Path(save_directory).name), folder_path=save_directory,
                          token=kwargs.get("token"))
        return files

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> BiomechGPTProcessor:
        """Load the processor (and the MotionTokenizer under `motion_tokenizer/`, when present) from a model folder
        or Hub repository."""
        processor = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        folder = Path(pretrained_model_name_or_path)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(str(pretrained_model_name_or_path),
                                            allow_patterns=[f"{MOTION_CODES_FOLDER}/*"], token=kwargs.get("token")))
        motion_folder = folder / MOTION_CODES_FOLDER
        if (motion_folder / "config.json").is_file():
            from .tokenization_motion import MotionTokenizer

            processor.motion_tokenizer = MotionTokenizer.from_pretrained(motion_folder)
        return processor

    # -- motion ----------------------------------------------------------------------------------------------------
    @staticmethod
    def _is_codes(motion: Any) -> bool:
        return isinstance(motion, torch.Tensor) or (isinstance(motion, np.ndarray) and motion.ndim < 2) or (
            isinstance(motion, (list, tuple)) and all(isinstance(c, (int, np.integer)) for c in motion))

    def check_motion(self, motion: Any) -> Any:
        """The MotionTokenizer's out-of-distribution check of a `Motion` or motion file (`MotionDistributionCheck`:
        its reconstruction error per angle group against the training data's), or `None` for motion codes, without a
        MotionTokenizer, or for one saved without the check's limits."""
        check = getattr(self.motion_tokenizer, "check_motion", None)
        if check is None or self._is_codes(motion):
            return None
        return check(motion)

    def motion_warning(self, motion: Any) -> str | None:
        """One sentence for the user when a motion is unlike the training data (see `check_motion`), else `None`."""
        result = self.check_motion(motion)
        return None if result is None else result.warning

    def encode_motion(self, motion: Any) -> list[int]:
        """Motion codes for a `Motion`, a motion file path, or codes (list / 1-D array / tensor), cropped to the
        middle `max_motion_codes`."""
        if isinstance(motion, torch.Tensor) or isinstance(motion, np.ndarray) or (
                isinstance(motion, (list, tuple)) and all(isinstance(c, (int, np.integer)) for c in motion)):
            codes = [int(c) for c in np.asarray(motion).reshape(-1)]
            if not codes:
                raise ValueError("motion codes: empty")
        else:
            if self.motion_tokenizer is None:
                raise ValueError("this processor has no MotionTokenizer: pass motion codes, not a motion")
            if isinstance(motion, (str, os.PathLike)):
                out = self.motion_tokenizer(str(motion))
                codes = out["motion_codes"][0][out["motion_codes_mask"][0]].tolist()
            else:
                codes = list(self.motion_tokenizer.encode(motion))
        if self.codebook_size is not None and (min(codes) < 0 or max(codes) >= self.codebook_size):
            raise ValueError(f"motion codes must lie in [0, {self.codebook_size}), got {min(codes)}..{max(codes)}")
        return self.crop_codes(codes)

    @property
    def reads_codes(self) -> bool:
        return self.motion_input in ("codes", "both")

    @property
    def reads_features(self) -> bool:
        return self.motion_input in ("continuous", "both")

    @property
    def feature_extractor(self) -> Any:
        """The MotionTokenizer's feature extractor (heading-invariant frames), or the canonical default."""
        extractor = getattr(self.motion_tokenizer, "feature_extractor", None)
        if extractor is None:
            from .feature_extraction_motion import MotionFeatureExtractor

            extractor = MotionFeatureExtractor()
        return extractor

    @property
    def frame_window(self) -> int:
        """Frames of a motion the encoder reads: the window its `max_motion_codes` codes cover."""
        return self.max_motion_codes * FRAMES_PER_CODE

    def motion_inputs(self, motion: Any, *, start: int | None = None) -> dict[str, Any]:
        """The feature frames a motion encoder reads, for a `Motion`, a motion file or a float array.

        The frames are the MotionTokenizer's heading-invariant features, cropped to the middle
        `max_motion_codes * 4` frames (the window the codes are cropped to) and padded to a multiple of 4 by repeating
        the last frame.

        Args:
            motion (`Motion`, path or array `(frames, coordinates)`): the movement (codes cannot be read back).
            start (`int`, *optional*): first frame of the window (training crops); defaults to the middle.

        Returns:
            `dict` with `motion` (the validated `Motion`), `motion_values` (float32 `(frames, channels)`),
            `coordinate_mask` (bool `(channels,)`), `motion_duration` (seconds of the whole recording), with
            `motion_descriptors` set `motion_descriptors` (float32 `(descriptors,)`, of the whole recording), and
            `fingerprint` (a digest of all of them, naming the motion in the prefix cache).
        """
        if isinstance(motion, torch.Tensor) or (isinstance(motion, np.ndarray) and motion.ndim < 2) or (
                isinstance(motion, (list, tuple)) and all(isinstance(c, (int, np.integer)) for c in motion)):
            raise ValueError("motion: this model reads the motion itself (motion_input "
                             f"{self.motion_input!r}); pass a Motion or a motion file, not motion codes")
        extractor = self.feature_extractor
        valid = extractor.as_motion(motion)
        values, coordinate_mask = extractor.motion_to_features(valid)
        values = self.crop_frames(values, self.frame_window, start=start)
        duration = float(valid.n_frames / valid.frame_rate)
        digest = hashlib.sha1(values.tobytes())
        digest.update(coordinate_mask.tobytes())
        digest.update(np.float64(duration).tobytes())
        out = {"motion": valid, "motion_values": values, "coordinate_mask": coordinate_mask,
               "motion_duration": duration}
        if self.motion_descriptors:
            out["motion_descriptors"] = self.encoder_descriptors(valid)
            digest.update(out["motion_descriptors"].tobytes())
        return out | {"fingerprint": digest.hexdigest()}

    @staticmethod
    def encoder_descriptors(motion: Any) -> np.ndarray:
        """The descriptors a motion encoder's descriptor token reads of a whole canonical `Motion` (float32; the
        `ENCODER_DESCRIPTORS` set of `motion_descriptors.py`), as training computes them too."""
        return motion_descriptors(motion, ENCODER_DESCRIPTORS).astype(np.float32)

    @staticmethod
    def crop_frames(values: np.ndarray, window: int, start: int | None = None) -> np.ndarray:
        """At most `window` frames of `values` `(frames, channels)`: the middle ones, or those from `start`, padded to
        a multiple of 4 by repeating the last frame (the motion encoder halves the rate twice)."""
        if len(values) > window:
            start = (len(values) - window) // 2 if start is None else int(np.clip(start, 0, len(values) - window))
            values = values[start:start + window]
        pad = -len(values) % FRAMES_PER_CODE
        if pad:
            values = np.concatenate([values, np.repeat(values[-1:], pad, 0)])
        return np.ascontiguousarray(values, dtype=np.float32)

    @staticmethod
    def collate_motion_inputs(items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """A batch of [`~BiomechGPTProcessor.motion_inputs`] for the model: `motion_values` `(batch, frames,
        channels)` zero-padded to the longest, `motion_mask` `(batch, frames)`, `coordinate_mask` `(batch,
        channels)`, `motion_durations` `(batch,)` and, where the items have them, `motion_descriptors` `(batch,
        descriptors)`."""
        width = max(len(item["motion_values"]) for item in items)
        channels = items[0]["motion_values"].shape[1]
        values = torch.zeros(len(items), width, channels)
        mask = torch.zeros(len(items), width, dtype=torch.bool)
        for row, item in enumerate(items):
            n = len(item["motion_values"])
            values[row, :n] = torch.as_tensor(item["motion_values"])
            mask[row, :n] = True
        batch = {
            "motion_values": values,
            "motion_mask": mask,
            "coordinate_mask": torch.as_tensor(np.stack([item["coordinate_mask"] for item in items])),
            "motion_durations": torch.tensor([float(item["motion_duration"]) for item in items]),
        }
        with_descriptors = sum("motion_descriptors" in item for item in items)
        if with_descriptors and with_descriptors < len(items):
            raise ValueError(f"motion_descriptors: {with_descriptors} of {len(items)} motions in a batch have them")
        if with_descriptors:
            batch["motion_descriptors"] = torch.as_tensor(np.stack([item["motion_descriptors"] for item in items]),
                                                          dtype=torch.float32)
        return batch

    def crop_codes(self, codes: Sequence[int]) -> list[int]:
        """The middle `max_motion_codes` codes: steady movement in the middle of a trial, not its start or end."""
        codes = list(codes)
        extra = len(codes) - self.max_motion_codes
        if extra <= 0:
            return codes
        return codes[extra // 2: extra // 2 + self.max_motion_codes]

    # -- conversations ---------------------------------------------------------------------------------------------
    def _render(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, chat_template=self.chat_template, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def _user_message(self, question: str, first: bool) -> dict[str, str]:
        markers = f"{self.motion_start_token}{self.motion_end_token}\n" if first else ""
        return {"role": "user", "content": markers + question.strip()}

    def conversation_segments(self, motion_codes: Sequence[int], turns: Sequence[tuple[str, str | None]]
                              ) -> list[tuple[list[int], bool]]:
        """Token ids of a conversation as `(ids, is_answer)` segments: the motion prefix, then for each turn the
        question part and (unless `None`, which ends the conversation with the generation prompt) the answer part.
        Concatenated, they are the model's input; answer segments carry the loss in training."""
        if not turns:
            raise ValueError("a conversation needs at least one question")
        codes = self.crop_codes(motion_codes)
        messages: list[dict[str, str]] = []
        previous = ""
        segments: list[tuple[list[int], bool]] = []
        for k, (question, answer) in enumerate(turns):
            messages.append(self._user_message(question, first=k == 0))
            text = self._render(messages, add_generation_prompt=True)
            part = self._take(text, previous)
            if k == 0:
                cut = part.index(self.motion_end_token) + len(self.motion_end_token)
                prefix_ids = self._ids(part[:cut])
                if prefix_ids[-2:] != [self.motion_start_token_id, self.motion_end_token_id]:
                    raise ValueError("the chat template altered the motion markers")
                placeholders = [self.motion_feature_token_id] * self.num_motion_tokens if self.reads_features else []
                code_ids = [self.motion_token_offset + c for c in codes] if self.reads_codes else []
                prefix_ids = prefix_ids[:-1] + placeholders + code_ids + prefix_ids[-1:]
                segments.append((prefix_ids, False))
                part = part[cut:]
            segments.append((self._ids(part), False))
            previous = text
            if answer is None:
                break
            messages.append({"role": "assistant", "content": answer.strip()})
            text = self._render(messages, add_generation_prompt=False)
            segments.append((self._ids(self._take(text, previous)), True))
            previous = text
        return segments

    @staticmethod
    def _take(text: str, previous: str) -> str:
        if not text.startswith(previous):
            raise ValueError("the chat template is not prefix-stable (a later turn rewrites earlier ones); "
                             "set processor.chat_template to one that is")
        return text[len(previous):]

    def build_training_example(self, motion_codes: Sequence[int], turns: Sequence[tuple[str, str]], *,
                               label_motion: bool = False) -> dict[str, list[int]]:
        """`input_ids` and `labels` of one trial's questions as one multi-turn conversation with the motion once.

        Labels are `-100` everywhere except on the answer tokens (including the end-of-turn token) and, with
        `label_motion`, on the motion codes and `</motion>`: the model then also learns to predict the next motion
        code, which gives every code a training signal instead of the few answer words that depend on it."""
        input_ids: list[int] = []
        labels: list[int] = []
        for k, (ids, is_answer) in enumerate(self.conversation_segments(motion_codes, turns)):
            input_ids += ids
            if is_answer:
                labels += ids
            elif k == 0 and label_motion:
                start = ids.index(self.motion_start_token_id)
                labels += [-100] * (start + 1) + ids[start + 1:]
            else:
                labels += [-100] * len(ids)
        return {"input_ids": input_ids, "labels": labels}

    def __call__(
        self,
        motion: Any = None,
        text: str | Sequence[str] | None = None,
        *,
        answers: str | Sequence[str] | None = None,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> Any:
        """Token ids for questions (and optionally answers) about one motion.

        Args:
            motion (`Motion`, path or codes): the movement.
            text (`str` or `list[str]`): the question(s), asked in order in one conversation.
            answers (`str` or `list[str]`, *optional*): answers to those questions; when given, the conversation ends
                after the last answer and `labels` are returned; otherwise it ends with the generation prompt.
            return_tensors (`str`, *optional*, defaults to `"pt"`): `"pt"` for tensors of shape `(1, sequence)`,
                `None` for lists.

        Returns:
            `BatchFeature` with `input_ids`, `attention_mask` (and `labels` when answers are given).
        """
        from transformers import BatchFeature

        if motion is None or text is None:
            raise ValueError("BiomechGPTProcessor needs a motion and at least one question")
        questions = [text] if isinstance(text, str) else list(text)
        codes = self.encode_motion(motion)
        if answers is None:
            ids = [i for seg, _ in self.conversation_segments(codes, [(q, None) for q in questions[:1]]) for i in seg]
            if len(questions) > 1:
                raise ValueError("without answers, ask one question per call (or use model.answer for several)")
            data: dict[str, Any] = {"input_ids": [ids], "attention_mask": [[1] * len(ids)]}
        else:
            answers = [answers] if isinstance(answers, str) else list(answers)
            if len(answers) != len(questions):
                raise ValueError(f"got {len(answers)} answers for {len(questions)} questions")
            example = self.build_training_example(codes, list(zip(questions, answers)))
            data = {"input_ids": [example["input_ids"]], "attention_mask": [[1] * len(example["input_ids"])],
                    "labels": [example["labels"]]}
        return BatchFeature(data, tensor_type=return_tensors)

    # -- pieces the model's answer() uses --------------------------------------------------------------------------
    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else 0)

    def prefix_ids(self, motion_codes: Sequence[int]) -> list[int]:
        """The token ids up to and including `</motion>`: identical for every question about one motion."""
        return self.conversation_segments(motion_codes, [("?", None)])[0][0]

    def question_ids(self, question: str) -> list[int]:
        """The token ids after `</motion>` up to the assistant's turn, for a first question."""
        return self.conversation_segments([0], [(question, None)])[1][0]

    def answer_ids(self, answer: str) -> list[int]:
        """The token ids of an assistant answer, including its end-of-turn token(s)."""
        return self.conversation_segments([0], [("?", answer)])[2][0]

    @property
    def stop_token_ids(self) -> set[int]:
        """Ids that end an answer: the template's end-of-turn token and the tokenizer's end-of-sequence token."""
        if self._stop_ids is None:
            marker = "Zq"
            ids = self.answer_ids(marker)
            tail = self._ids(marker)
            stops = set()
            if ids[: len(tail)] == tail and len(ids) > len(tail):
                stops.add(ids[len(tail)])
            if self.tokenizer.eos_token_id is not None:
                stops.add(int(self.tokenizer.eos_token_id))
            self._stop_ids = stops
        return self._stop_ids

    def candidate_ids(self, task: str) -> dict[str, list[int]]:
        """label → token ids of its answer sentence, for a closed-set task."""
        if task not in self._candidate_cache:
            if task not in self.answer_candidates:
                raise ValueError(f"no answer candidates for task {task!r}")
            self._candidate_cache[task] = {label: self.answer_ids(text)
                                           for label, text in self.answer_candidates[task].items()}
        return self._candidate_cache[task]

    def numeric_candidates(self, task: str) -> tuple[list[float], list[list[int]]]:
        """The values (in the task's unit) a numeric task's answer is chosen among, and the token ids that score each.

        Every wording contributes its grid (`low` to `high` in steps of `step`). A value's ids are its answer sentence
        cut one token after the number: the words after it are the same for every value of a wording, and the first
        of them says where the number ends ("12" followed by " s" is not the start of "120") and in which unit."""
        if task not in self._numeric_cache:
            values: list[float] = []
            sequences: list[list[int]] = []
            for spec in self.numeric_answers[task]:
                numbers = [round(spec["low"] + k * spec["step"], spec["decimals"]) for k in range(_grid_size(spec))]
                own = [self.answer_ids(spec["template"].format(f"{n:.{spec['decimals']}f}")) for n in numbers]
                tail = _shared_suffix_length(own)
                sequences += [seq[:len(seq) - tail + 1] if tail else seq for seq in own]
                values += [n * spec["scale"] for n in numbers]
            self._numeric_cache[task] = (values, sequences)
        return self._numeric_cache[task]

    def numeric_text(self, task: str, value: float) -> str:
        """The answer sentence of a numeric task for `value` (in the task's unit, at its first wording's precision)."""
        spec = self.numeric_answers[task][0]
        return spec["template"].format(f"{value:.{spec['decimals']}f}")

    def candidate_text(self, task: str, label: str) -> str:
        return self.answer_candidates[task][label]

    def candidate_log_prior(self, task: str, label: str) -> float:
        """log P(candidate sentence | label) in the training corpus (0 when unknown)."""
        return self.answer_log_priors.get(task, {}).get(label, 0.0)

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True, **kwargs: Any) -> str:
        """Text of `token_ids`; motion tokens (ids at or above the offset) are dropped."""
        ids = [int(i) for i in token_ids if int(i) < self.motion_token_offset]
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens, **kwargs)

    def batch_decode(self, sequences: Sequence[Sequence[int]], **kwargs: Any) -> list[str]:
        return [self.decode(s, **kwargs) for s in sequences]

    # -- tasks -----------------------------------------------------------------------------------------------------
    def detect_task(self, question: str) -> str | None:
        """The task `question` is about, or `None` when it is none the model can answer (see `route_question`)."""
        return self.route_question(question).task

    @property
    def routing_label_names(self) -> dict[str, dict[str, list[str]]]:
        """The label names the router reads (`label_names`, or the corpus lexicon's for a processor saved without
        them when the biomechgpt package is installed, else none)."""
        if self.label_names is not None:
            return self.label_names
        if self._corpus_label_names is None:
            try:
                names = importlib.import_module(_CORPUS_LEXICON_MODULE).label_names
            except (ImportError, AttributeError):
                names = None
            self._corpus_label_names = {} if names is None else {
                t: names(t) for t, kind in self.task_kinds.items() if kind == "closed"}
        return self._corpus_label_names

    def routing_text(self, question: str) -> str:
        """`question` as the router reads it: a person named with a title ("Mrs Jones") as "the patient", lower case,
        hyphens as spaces, its everyday wordings (`EVERYDAY_WORDINGS`) and the names of diagnoses, devices and sides
        (`label_names`) in the clinical words of the cues."""
        return self._in_clinical_words(_plain_text(question))

    def _in_clinical_words(self, text: str) -> str:
        """`text` (already `_plain_text`) with its everyday wordings and label names in the cues' words."""
        for pattern, clinical in _EVERYDAY:
            text = pattern.sub(clinical, text)
        task_of, names = self._label_names_pattern()
        if names is not None:
            text = names.sub(lambda match: _LABEL_NAMES_NAME[task_of[match.group()]], text)
        return text

    def _label_names_pattern(self) -> tuple[dict[str, str], re.Pattern | None]:
        """name -> task for the label names of `_LABEL_NAMES_NAME`'s tasks (lower case, words only, no article), and
        one pattern that finds them, longest first ("bilateral crutches" before "bilateral")."""
        if self._label_name_index is None:
            task_of = {}
            for task in _LABEL_NAMES_NAME:
                for names in self.routing_label_names.get(task, {}).values():
                    for phrase in names:
                        name = re.sub(r"^(?:a|an|the) ", "", " ".join(re.findall(r"[a-z0-9']+", phrase.lower())))
                        if name and name not in _NOT_LABEL_NAMES:
                            task_of[name] = task
            pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(task_of, key=len, reverse=True))) + r")\b"
                                 ) if task_of else None
            self._label_name_index = (task_of, pattern)
        return self._label_name_index

    def route_question(self, question: str) -> QuestionRoute:
        """Which of this processor's tasks `question` asks about: the one router of `model.answer`, `ask`, the chat
        page and the Hub remote code.

        1. A question about an animal, a product, what a kind of being can do or advice for the asker, and not about
           the recorded person, is refused (`task` is `None`); so is general knowledge ("in general", "symptoms of")
           or one naming someone else ("Usain Bolt") that does not point at the recording, and one about someone
           else's trait ("Kipchoge's cadence") even if it does.
        2. The others are read in the cues' words (`routing_text`). A task scores the words of its cues (`TASK_CUES`)
           found in the question (one more for a clinical cue: it says more than an everyday one) plus the similarity
           (IDF-weighted overlap of the words that are not stop words) to its nearest example question
           (`task_questions`); without a cue, a near copy of an example (similarity at least 0.5) in a question about
           a movement or a body part scores too.
        3. A question with no score that points at the recording or names a movement goes to the task whose
           vocabulary (example questions, cue words, label names) holds more than `FALLBACK_SHARE` of its words,
           weighted by how few tasks know each (`_vocabulary_similarity`); "Do you see signs of a movement problem?"
           is about impairment. Anything else is refused.

        Tasks scoring at least `AMBIGUOUS_SHARE` of the best are `alternatives`.
        """
        text = _plain_text(question)
        # a fragment of one or two words ("speed?", "cadence?") asks about the recording in front of the user
        points = bool(_POINTS_AT_THE_RECORDING.search(text)) or len(_WORD.findall(text)) <= 2
        named = self._names_someone(question)  # (anyone, anyone with "'s")
        if ((_OTHER_SUBJECTS.search(text) and not _ABOUT_THE_RECORDING.search(text))
                or ((_ANIMALS.search(text) or _SOMEONE_ELSE.search(text)) and not _THE_RECORDING_ITSELF.search(text))
                or (not points and (_GENERAL_KNOWLEDGE.search(text) or named[0])) or named[1]):
            return QuestionRoute(None)
        words = tuple(_WORD.findall(self._in_clinical_words(text)))
        body = any(_word_matches(a, w) for a in _ANCHORS for w in words)
        scores: dict[str, float] = {}
        for task in self.task_kinds:
            for cue in TASK_CUES.get(task, ()):
                strong, phrase = _cue_pattern(cue)
                if (strong or body or (points and cue not in _BODY_CUES)) and _phrase_in(words, phrase):
                    scores[task] = scores.get(task, 0.0) + len(phrase) + strong
        similarity = self._example_similarity(set(words) - _STOP_WORDS)
        for task, value in similarity.items():
            if task in scores or (body and value >= 0.5):
                scores[task] = scores.get(task, 0.0) + value
        if not scores and (points or any(_word_matches(a, w) for a in _MOVEMENT_WORDS for w in words)):
            vocabulary = self._vocabulary_similarity(words)
            if vocabulary and max(vocabulary.values()) > FALLBACK_SHARE:
                scores = vocabulary
        if not scores:
            return QuestionRoute(None)
        order = list(self.task_kinds)
        ranked = sorted(scores, key=lambda t: (-scores[t], order.index(t)))
        best = scores[ranked[0]]
        alternatives = tuple(t for t in ranked[1:] if scores[t] >= AMBIGUOUS_SHARE * best)
        return QuestionRoute(ranked[0], best, alternatives)

    def _names_someone(self, question: str) -> tuple[bool, bool]:
        """Whether `question` names a person or a place ("Usain Bolt", "London"), and whether it names one with "'s"
        ("Kipchoge's cadence": someone else's, even where "he" points at the recording). A name is a capitalised word
        inside a sentence that no task's vocabulary knows and that is not an eponym ("Huntington's disease")."""
        index = self._vocabulary()
        anyone = False
        for match in _CAPITALISED.finditer(question):
            before = question[:match.start()].rstrip()
            if not before or before[-1] in ".?!:;\"'(":  # a sentence's first word
                continue
            word = match.group().lower().split("'")[0]
            known = word in _FILLER_WORDS or any(_stem(word) in stems or word.startswith(prefixes)
                                                 for stems, prefixes in index.values())
            if not known and not _EPONYM_OF.match(question[match.end():].lower()):
                if match.group().lower().endswith("'s"):
                    return True, True
                anyone = True
        return anyone, False

    def _vocabulary(self) -> dict[str, tuple[set[str], tuple[str, ...]]]:
        """task -> (the stems of its vocabulary, the prefixes of its "*" cues), see `_vocabulary_similarity`."""
        if self._vocabulary_index is None:
            index: dict[str, tuple[set[str], tuple[str, ...]]] = {}
            for task in self.task_kinds:
                texts = [*self.task_questions.get(task, ()), *(n for names in
                                                             self.routing_label_names.get(task, {}).values()
                                                             for n in names)]
                found = {_stem(w) for text in texts for w in _WORD.findall(text.lower()) if w not in _FILLER_WORDS}
                cue_words = [cue.lstrip("+") for cue in TASK_CUES.get(task, ()) if " " not in cue]
                found |= {_stem(w) for w in cue_words if not w.endswith("*") and w not in _FILLER_WORDS}
                index[task] = (found, tuple(w[:-1] for w in cue_words if w.endswith("*")))
            self._vocabulary_index = index
        return self._vocabulary_index

    def _vocabulary_similarity(self, words: Sequence[str]) -> dict[str, float]:
        """task -> the share of the question's words (their IDF over the tasks) that the task's vocabulary holds: the
        words of its example questions (`task_questions`), of its cues (`TASK_CUES`) and of its labels' names
        (`label_names`), inflections aside. A word no task knows counts as one only one task knows. Only tasks that
        hold a word at most two tasks know count: a word every gait task knows ("gait", "walking") says no task."""
        index = self._vocabulary()
        if not index:
            return {}
        known: list[tuple[float, set[str]]] = []
        for word in dict.fromkeys(w for w in words if w not in _FILLER_WORDS):
            stem = _stem(word)
            tasks = {t for t, (stems, prefixes) in index.items() if stem in stems or word.startswith(prefixes)}
            known.append((math.log(1 + len(index) / max(len(tasks), 1)), tasks))
        total = sum(weight for weight, _ in known)
        telling = {t for _, tasks in known if len(tasks) <= 2 for t in tasks}
        shares: dict[str, float] = {}
        for weight, tasks in known:
            for task in tasks & telling:
                shares[task] = shares.get(task, 0.0) + weight / total
        return shares

    def _example_similarity(self, words: set[str]) -> dict[str, float]:
        """task -> IDF-weighted Jaccard similarity of `words` to the task's nearest example question."""
        if self._question_index is None:
            examples = [(task, set(_WORD.findall(q.lower())) - _STOP_WORDS)
                        for task, qs in self.task_questions.items() if task in self.task_kinds for q in qs]
            counts: dict[str, int] = {}
            for _, example in examples:
                for w in example:
                    counts[w] = counts.get(w, 0) + 1
            idf = {w: math.log((1 + len(examples)) / (1 + c)) + 1.0 for w, c in counts.items()}
            self._question_index = (idf, examples)
        idf, examples = self._question_index
        best: dict[str, float] = {}
        for task, example in examples:
            shared = sum(idf[w] for w in words & example)
            if shared:
                union = sum(idf.get(w, 1.0) for w in words | example)
                best[task] = max(best.get(task, 0.0), shared / union)
        return best

    def task_title(self, task: str) -> str:
        """How an answer names `task` ("walking speed", "the affected side")."""
        return TASK_TITLES.get(task, task.replace("_", " "))

    def refusal(self, question: str = "") -> str:
        """The answer to a question none of the tasks covers: what the model can answer instead."""
        titles = [self.task_title(t) for t in self.task_kinds]
        listed = ", ".join(titles[:-1]) + f" or {titles[-1]}" if len(titles) > 1 else "".join(titles)
        return (f"I can only answer questions about this recording's movement: {listed}."
                if listed else "This model has no tasks it can answer.")

    def route_note(self, route: QuestionRoute) -> str | None:
        """For an ambiguous question, the line that says which task the answer is about; `None` otherwise."""
        if route.task is None or not route.alternatives:
            return None
        others = " or ".join(self.task_title(t) for t in route.alternatives)
        return f"Answered as a question about {self.task_title(route.task)} (it could also be about {others})."

    @property
    def answer_parser(self) -> Any:
        """The QA corpus's `parse_answer(task, text)` when the biomechgpt package is installed, else `None`. Imported
        by name at run time, so this file stays loadable as Hub remote code without the package."""
        try:
            return importlib.import_module(_CORPUS_PARSER_MODULE).parse_answer
        except (ImportError, AttributeError):
            return None

    def parse_answer(self, task: str, text: str) -> tuple[str | None, float | None, str | None]:
        """`(label, value, unit)` of an answer sentence, with the QA corpus's own parser when the biomechgpt package
        is installed, else the first number in the sentence in the task's unit."""
        parse_answer = self.answer_parser
        if parse_answer is not None:
            try:
                parsed = parse_answer(task, text)
            except ValueError:  # a task the corpus does not know: fall through to the plain number
                parsed = None
            if parsed is not None:
                if isinstance(parsed, dict):
                    return parsed.get("label"), parsed.get("value"), parsed.get("unit")
                return getattr(parsed, "label", None), getattr(parsed, "value", None), getattr(parsed, "unit", None)
        if self.task_kinds.get(task) != "numeric":
            return None, None, None
        match = _NUMBER.search(text)
        if match is None:
            return None, None, None
        return None, float(match.group().replace(",", ".")), self.task_units.get(task)


def register_auto_classes() -> None:
    """Register the processor with `AutoProcessor` for the `biomechgpt` model type (idempotent; the config must be
    registered first), and mark it so `save_pretrained` writes its `auto_map` and copies this code."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if "biomechgpt" in CONFIG_MAPPING:
        AutoProcessor.register(CONFIG_MAPPING["biomechgpt"], BiomechGPTProcessor, exist_ok=True)
    BiomechGPTProcessor.register_for_auto_class()
