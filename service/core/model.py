"""Plain data passed between the core's stages: enrichment results, watched entities, alerts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

# Why an alert does not go out: an earlier version of the post alerted the subscription, or an
# identical text (a forwarded copy) did.
SUPPRESSION_REASONS = ("edit", "duplicate")


@dataclass(frozen=True, slots=True)
class WatchedEntity:
    """An entity a user watches (from the rules file's ``entities:``), known by its aliases."""

    id: str
    name: str
    aliases: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "aliases": list(self.aliases)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WatchedEntity:
        return cls(id=data["id"], name=data.get("name", data["id"]), aliases=tuple(data["aliases"]))


@dataclass(frozen=True, slots=True)
class TopicScore:
    id: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": round(self.score, 4)}


@dataclass(frozen=True, slots=True)
class FoundEntity:
    """An entity found in a post: Telegram's (hashtag, cashtag, mention, url), NER's (PER, ORG,
    LOC) or a watched one (``id`` set). Offsets are Python string indices into the post text."""

    type: str
    text: str
    start: int
    end: int
    canonical: str | None = None
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.type,
            "text": self.text,
            "canonical": self.canonical,
            "start": self.start,
            "end": self.end,
        }
        if self.id is not None:
            data["id"] = self.id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FoundEntity:
        return cls(
            type=data["type"],
            text=data["text"],
            start=int(data["start"]),
            end=int(data["end"]),
            canonical=data.get("canonical"),
            id=data.get("id"),
        )


@dataclass(frozen=True, slots=True)
class Enrichment:
    """What enrichment learned about one post version."""

    lang: str | None = None
    topics: tuple[TopicScore, ...] = ()
    entities: tuple[FoundEntity, ...] = ()

    @property
    def topic_ids(self) -> frozenset[str]:
        return frozenset(topic.id for topic in self.topics)

    @property
    def entity_ids(self) -> frozenset[str]:
        return frozenset(entity.id for entity in self.entities if entity.id is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lang": self.lang,
            "topics": [topic.to_dict() for topic in self.topics],
            "entities": [entity.to_dict() for entity in self.entities],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Enrichment:
        return cls(
            lang=data.get("lang"),
            topics=tuple(TopicScore(t["id"], float(t["score"])) for t in data.get("topics", ())),
            entities=tuple(FoundEntity.from_dict(e) for e in data.get("entities", ())),
        )


@dataclass(frozen=True, slots=True)
class Highlight:
    start: int
    end: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Highlight:
        return cls(int(data["start"]), int(data["end"]), str(data["text"]))


def alert_id_for(subscription_id: str, version_key: str) -> str:
    """A deterministic alert id: the same post version and subscription always give the same id,
    which makes redelivery idempotent (same webhook-id, no second Telegram message)."""
    digest = hashlib.sha256(f"{subscription_id}\x00{version_key}".encode()).hexdigest()
    return f"al_{digest[:24]}"


@dataclass(frozen=True, slots=True)
class Alert:
    """A match of one subscription on one post version, and what became of it.

    ``suppressed`` is None for an alert that goes out, ``"edit"`` when an earlier version of the
    post already matched this subscription, ``"duplicate"`` when an identical text already alerted
    it (``duplicate_of`` names that post). ``post`` is the post's JSON form (``Post.to_dict``).
    """

    subscription_id: str
    post: dict[str, Any]
    highlights: tuple[Highlight, ...] = ()
    suppressed: str | None = None
    duplicate_of: str | None = None
    edited_now_matches: bool = False
    also_in: tuple[str, ...] = ()
    enrichment: dict[str, Any] = field(default_factory=dict)
    matched_at: float = 0.0
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            version = f"{self.post_key}@{self.post['content_hash']}"
            object.__setattr__(self, "id", alert_id_for(self.subscription_id, version))

    @property
    def post_key(self) -> str:
        return f"{self.post['channel'].lower()}/{self.post['message_id']}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subscription_id": self.subscription_id,
            "post": self.post,
            "highlights": [h.to_dict() for h in self.highlights],
            "suppressed": self.suppressed,
            "duplicate_of": self.duplicate_of,
            "edited_now_matches": self.edited_now_matches,
            "also_in": list(self.also_in),
            "enrichment": self.enrichment,
            "matched_at": self.matched_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        return cls(
            id=data["id"],
            subscription_id=data["subscription_id"],
            post=data["post"],
            highlights=tuple(Highlight.from_dict(h) for h in data.get("highlights", ())),
            suppressed=data.get("suppressed"),
            duplicate_of=data.get("duplicate_of"),
            edited_now_matches=bool(data.get("edited_now_matches", False)),
            also_in=tuple(data.get("also_in", ())),
            enrichment=data.get("enrichment") or {},
            matched_at=float(data.get("matched_at", 0.0)),
        )
