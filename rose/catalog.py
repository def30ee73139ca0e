"""The catalog of tasks and languages rose knows.

Reference: Anikina et al. (EMNLP 2025), section 4 of ../shared/docs/method.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rose.errors import RoseError


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1, the code rose uses everywhere
    name: str  # English name, used in prompts
    script: str  # ISO 15924
    sib200: str  # Davlan/sib200 config
    massive: str  # AmazonScience/massive locale
    sentiment_hub: str | None = None  # hub id of a human-labelled sentiment set, if one is known
    lingua: str = ""  # lingua-language-detector's Language enum name


@dataclass(frozen=True)
class Task:
    name: str
    dataset: str  # folder name in the shared-data layout
    description: str  # what a text of this task is, used in prompts
    labels: tuple[str, ...]
    text_field: str = "text"
    label_field: str = "label"
    hub_id: str = ""
    example_noun: str = "text"  # "sentence", "utterance", ...
    drop_labels: tuple[str, ...] = field(default=())  # source labels that are silently outside the task


LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in [
        Language("th", "Thai", "Thai", "tha_Thai", "th-TH", "DGurgurov/thai_sa", "THAI"),
        Language("he", "Hebrew", "Hebr", "heb_Hebr", "he-IL", "DGurgurov/hebrew_sa", "HEBREW"),
        Language("id", "Indonesian", "Latn", "ind_Latn", "id-ID", "DGurgurov/indonesian_sa", "INDONESIAN"),
        Language("sw", "Swahili", "Latn", "swh_Latn", "sw-KE", "DGurgurov/swahili_sa", "SWAHILI"),
        Language("de", "German", "Latn", "deu_Latn", "de-DE", "DGurgurov/german_sa", "GERMAN"),
        Language("en", "English", "Latn", "eng_Latn", "en-US", "sepidmnorozy/English_sentiment", "ENGLISH"),
        Language("ro", "Romanian", "Latn", "ron_Latn", "ro-RO", "DGurgurov/romanian_sa", "ROMANIAN"),
        Language("az", "Azerbaijani", "Latn", "azj_Latn", "az-AZ", "DGurgurov/azerbaijani_sa", "AZERBAIJANI"),
        Language("sl", "Slovenian", "Latn", "slv_Latn", "sl-SL", None, "SLOVENE"),
        Language("te", "Telugu", "Telu", "tel_Telu", "te-IN", "DGurgurov/telugu_sa", "TELUGU"),
        Language("cy", "Welsh", "Latn", "cym_Latn", "cy-GB", None, "WELSH"),
    ]
}

MASSIVE10 = (
    "alarm_query",
    "audio_volume_down",
    "calendar_remove",
    "cooking_recipe",
    "datetime_convert",
    "email_sendemail",
    "play_audiobook",
    "recommendation_movies",
    "transport_ticket",
    "weather_query",
)

# All 60 MASSIVE intents (18 scenarios).
MASSIVE60 = (
    "alarm_query", "alarm_remove", "alarm_set", "audio_volume_down", "audio_volume_mute", "audio_volume_other",
    "audio_volume_up", "calendar_query", "calendar_remove", "calendar_set", "cooking_query", "cooking_recipe",
    "datetime_convert", "datetime_query", "email_addcontact", "email_query", "email_querycontact", "email_sendemail",
    "general_greet", "general_joke", "general_quirky", "iot_cleaning", "iot_coffee", "iot_hue_lightchange",
    "iot_hue_lightdim", "iot_hue_lightoff", "iot_hue_lighton", "iot_hue_lightup", "iot_wemo_off", "iot_wemo_on",
    "lists_createoradd", "lists_query", "lists_remove", "music_dislikeness", "music_likeness", "music_query",
    "music_settings", "news_query", "play_audiobook", "play_game", "play_music", "play_podcasts", "play_radio",
    "qa_currency", "qa_definition", "qa_factoid", "qa_maths", "qa_stock", "recommendation_events",
    "recommendation_locations", "recommendation_movies", "social_post", "social_query", "takeaway_order",
    "takeaway_query", "transport_query", "transport_taxi", "transport_ticket", "transport_traffic", "weather_query",
)  # fmt: skip

SIB200_LABELS = (
    "science/technology", "travel", "politics", "sports", "health", "entertainment", "geography",
)  # fmt: skip

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task(
            "topic",
            "sib200",
            "sentences from news and encyclopedic text, classified by topic",
            SIB200_LABELS,
            hub_id="Davlan/sib200",
            example_noun="sentence",
        ),
        Task(
            "intent",
            "massive",
            "commands and questions a user says to a voice assistant, classified by intent",
            MASSIVE10,
            text_field="utt",
            label_field="intent",
            hub_id="AmazonScience/massive",
            example_noun="utterance",
        ),
        Task(
            "intent_all",
            "massive",
            "commands and questions a user says to a voice assistant, classified by intent",
            MASSIVE60,
            text_field="utt",
            label_field="intent",
            hub_id="AmazonScience/massive",
            example_noun="utterance",
        ),
        Task(
            "sentiment",
            "sentiment",
            "short texts (reviews, posts, news sentences), classified by sentiment",
            ("negative", "positive"),
            example_noun="text",
            drop_labels=("neutral",),
        ),
    ]
}


def _unknown(kind: str, name: str, known) -> RoseError:
    return RoseError(f"unknown {kind} {name!r}: choose one of {', '.join(sorted(known))}")


def get_task(name: str) -> Task:
    """The task called ``name``, or a one-line error listing the known tasks."""
    try:
        return TASKS[name]
    except KeyError:
        raise _unknown("task", name, TASKS) from None


def get_language(code: str) -> Language:
    """The language with ISO 639-1 ``code`` (an English name is accepted too)."""
    if code in LANGUAGES:
        return LANGUAGES[code]
    for lang in LANGUAGES.values():
        if lang.name.lower() == code.lower():
            return lang
    raise _unknown("language", code, LANGUAGES)


def check_label(task: Task, label: str) -> str:
    if label not in task.labels:
        raise RoseError(f"label {label!r} is not a label of task {task.name!r}: use one of {', '.join(task.labels)}")
    return label
