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


# One short English description per label, rose's own: what the revision judge is told a label means when no
# summary step ran and no --descriptions file was given (the reference always states the label's meaning).
_MASSIVE_DESCRIPTIONS = {
    "alarm_query": "asking which alarms are set or when an alarm will go off",
    "alarm_remove": "asking to delete or turn off an alarm",
    "alarm_set": "asking to set an alarm for a time or date",
    "audio_volume_down": "asking to make the sound or music quieter",
    "audio_volume_mute": "asking to mute the sound or be silent",
    "audio_volume_other": "other requests about the sound volume, such as setting it to a level",
    "audio_volume_up": "asking to make the sound or music louder",
    "calendar_query": "asking about events or meetings in the calendar",
    "calendar_remove": "asking to delete or cancel an event or meeting in the calendar",
    "calendar_set": "asking to add an event, meeting or reminder to the calendar",
    "cooking_query": "asking a question about cooking, food or ingredients",
    "cooking_recipe": "asking for a recipe or how to prepare a dish",
    "datetime_convert": "asking to convert a time between time zones or formats",
    "datetime_query": "asking for the current time, date or day",
    "email_addcontact": "asking to add an email address or person to the contacts",
    "email_query": "asking about new or received emails",
    "email_querycontact": "asking for details of a contact, such as a phone number or email address",
    "email_sendemail": "asking to write, send or reply to an email",
    "general_greet": "greeting the assistant or asking how it is",
    "general_joke": "asking the assistant to tell a joke",
    "general_quirky": "chit-chat and odd questions that fit no other intent",
    "iot_cleaning": "asking a robot vacuum or smart device to clean",
    "iot_coffee": "asking a smart coffee machine to make coffee",
    "iot_hue_lightchange": "asking to change the colour of the smart lights",
    "iot_hue_lightdim": "asking to dim the smart lights",
    "iot_hue_lightoff": "asking to turn off the smart lights",
    "iot_hue_lighton": "asking to turn on the smart lights",
    "iot_hue_lightup": "asking to make the smart lights brighter",
    "iot_wemo_off": "asking to switch off a smart plug or the device on it",
    "iot_wemo_on": "asking to switch on a smart plug or the device on it",
    "lists_createoradd": "asking to create a list or add an item to a list",
    "lists_query": "asking what is on a list or which lists exist",
    "lists_remove": "asking to remove an item from a list or delete a list",
    "music_dislikeness": "saying the user dislikes a song, artist or genre",
    "music_likeness": "saying the user likes a song, artist or genre",
    "music_query": "asking which song is playing or about music",
    "music_settings": "asking to change music playback settings, such as shuffle or repeat",
    "news_query": "asking for the news or headlines on a topic",
    "play_audiobook": "asking to play or resume an audiobook",
    "play_game": "asking to play a game",
    "play_music": "asking to play a song, artist, album or genre",
    "play_podcasts": "asking to play a podcast or an episode",
    "play_radio": "asking to play a radio station",
    "qa_currency": "asking for an exchange rate or to convert money between currencies",
    "qa_definition": "asking what a word means or for its definition",
    "qa_factoid": "asking a factual question about the world",
    "qa_maths": "asking to calculate something",
    "qa_stock": "asking for a stock price or how a company's shares are doing",
    "recommendation_events": "asking for events or things to do nearby",
    "recommendation_locations": "asking for a place to go, such as a restaurant or shop",
    "recommendation_movies": "asking for a film to watch",
    "social_post": "asking to post something on social media or send a complaint to a company",
    "social_query": "asking for updates from friends or accounts on social media",
    "takeaway_order": "asking to order food for delivery or collection",
    "takeaway_query": "asking about a takeaway order or which places deliver",
    "transport_query": "asking about public transport times, routes or travel",
    "transport_taxi": "asking to book a taxi or ride",
    "transport_ticket": "asking to book or buy a train, bus or plane ticket",
    "transport_traffic": "asking about the traffic on a road or route",
    "weather_query": "asking about the weather or the forecast",
}
LABEL_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "topic": {
        "science/technology": "science, research, technology, computers and inventions",
        "travel": "travelling, tourism, transport, destinations and holidays",
        "politics": "government, elections, laws, politicians and international relations",
        "sports": "sports, athletes, matches, teams and competitions",
        "health": "health, illness, medicine, hospitals and the body",
        "entertainment": "films, music, television, celebrities, games and leisure",
        "geography": "places, countries, landscapes, climate and the natural world",
    },
    "intent": {label: _MASSIVE_DESCRIPTIONS[label] for label in MASSIVE10},
    "intent_all": _MASSIVE_DESCRIPTIONS,
    "sentiment": {
        "negative": "texts that express a negative opinion, complaint, sadness or anger",
        "positive": "texts that express a positive opinion, praise, joy or gratitude",
    },
}


def label_description(task: Task, label: str) -> str:
    """rose's short English description of a label of ``task``."""
    return LABEL_DESCRIPTIONS[task.name][check_label(task, label)]


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
