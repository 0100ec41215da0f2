"""Every card of a run's report says what its numbers say (issue 20, item 3): the name and the
sentence name the same features in the same order, each word ("high", "low", "about
average", "2.3x the average", "40% below average", "mostly ...") agrees with the card's index,
z and shares, and "close to average on every feature" is said only when it holds for each.

Walks the report.html of runs on the Mall file, the project's default customers, generated
wide, campaign and wholesale-like tables, the real wholesale file and order lines (planted,
and the real Online Retail sample); the sentence is also ``profiles.parquet``'s ``summary``."""

from __future__ import annotations

import html
import re
import tomllib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from in_process import segment_in_process
from planted_orders import order_lines, write_order_lines
from planted_tables import (
    mixed_marketing_table,
    wholesale_like_table,
    wide_behaviour_table,
    write_planted_table,
)

from tasks.reporting import explain

ROOT = Path(__file__).resolve().parent.parent


def preset_words() -> dict[str, int]:
    """The presets' own words (Mall's age, RFM's "recent" / "infrequent" ...) -> their level."""
    words = {}
    for preset in (ROOT / "schemas" / "presets").glob("*.toml"):
        for column in tomllib.loads(preset.read_text())["columns"].values():
            for level, word in enumerate(column.get("words", ())):
                words[word.lower()] = level
    return words


WORDS = preset_words()
SHARE = -1  # a phrase about a category's value (said by "mostly ...")

pytestmark = pytest.mark.slow


@dataclass
class Card:
    name: str = ""
    sentence: str = ""
    numbers: dict[str, tuple[float | None, float, bool]] = field(default_factory=dict)
    shares: dict[tuple[str, str], float] = field(default_factory=dict)  # (label, value) -> share


class Cards(HTMLParser):
    """The cards of report.html: name, sentence, per numeric column (index, z, feature), per
    category value its share in the segment (keyed by the heading of its table)."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[Card] = []
        self._open = False  # inside an <article class="card">
        self._text: list[str] | None = None
        self._in: str | None = None
        self._row: list[str] = []
        self._heading = ""

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "article" and attributes.get("class") == "card":
            self.cards.append(Card())
            self._open = True
        elif not self._open:
            return
        elif tag in ("h3", "h4", "td") or (tag == "p" and attributes.get("class") == "apart"):
            self._in, self._text = tag, []
        elif tag == "tr":
            self._row = []

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if not self._open:
            return
        if tag == "article":
            self._open = False
        elif tag == "tr":
            self._end_row()
        elif self._text is not None and tag == self._in:
            text = html.unescape("".join(self._text)).strip()
            self._text = None
            card = self.cards[-1]
            if tag == "h3":
                card.name = text.split(". ", 1)[1]
            elif tag == "p":
                card.sentence = text
            elif tag == "h4":
                self._heading = text
            else:
                self._row.append(text)

    def _end_row(self):
        row, card = self._row, self.cards[-1]
        if len(row) == 7:  # column, mean, median, all: mean, all: median, index, z
            feature = not row[0].endswith(" profile")
            label = re.sub(r" profile$", "", row[0])
            label = re.sub(r" \([^()]*\)$", "", label)  # the unit
            index = None if row[5] == "n/a" else float(row[5].replace(",", ""))
            card.numbers[label] = (index, float(row[6].replace("+", "")), feature)
        elif len(row) == 3 and row[1].endswith("%"):  # value, in segment, all customers
            card.shares[(self._heading, row[0])] = float(row[1].rstrip("%")) / 100
        self._row = []


def numbers_of(card: Card, label: str) -> tuple[float | None, float, bool]:
    """The card's (index, z, feature) of ``label`` (the sentence capitalises its first word)."""
    if label not in card.numbers and label[:1].lower() + label[1:] in card.numbers:
        label = label[:1].lower() + label[1:]
    return card.numbers[label]


def level_of_row(index: float | None, z: float) -> int:
    """The level the card's numbers give a feature (explain.level, on the shown numbers)."""
    return explain.level(explain.Difference("x", "x", True, 1, 1, 1, 1, index, z))


def level_of_phrase(phrase: str, card: Card) -> tuple[str, int] | None:
    """(label, level) a sentence's phrase says, after checking its number against the card."""
    if m := re.fullmatch(r"(.+) about average", phrase):
        label, said = m[1], explain.AVERAGE
    elif m := re.fullmatch(r"(.+) (\d+\.\d)x the average", phrase):
        label, said = m[1], explain.HIGH
        index, _, _ = numbers_of(card, label)
        assert index is not None and abs(index / 100 - float(m[2])) <= 0.051, (phrase, index)
    elif m := re.fullmatch(r"(.+) (\d+)% (above|below) average", phrase):
        label, said = m[1], explain.HIGH if m[3] == "above" else explain.LOW
        index, _, _ = numbers_of(card, label)
        assert index is not None and abs(abs(index - 100) - int(m[2])) <= 1, (phrase, index)
    elif m := re.fullmatch(r"(.+) (\d+\.\d) SD (above|below) average", phrase):
        label, said = m[1], explain.HIGH if m[3] == "above" else explain.LOW
        _, z, _ = numbers_of(card, label)
        assert abs(abs(z) - float(m[2])) <= 0.051 and (z > 0) == (m[3] == "above"), phrase
    else:
        return None
    index, z, feature = numbers_of(card, label)
    assert feature, f"{phrase!r}: the words explain the clustering, not a profile column"
    if index is None:
        expected = explain.HIGH if z >= 0.5 else explain.LOW if z <= -0.5 else explain.AVERAGE
    else:  # rounding of the shown index and z: allow the boundary either way
        expected = said
        if said == explain.AVERAGE:
            assert 80 - 0.5 < index < 125 + 0.5, (phrase, index)
        elif said == explain.HIGH:
            assert index >= 110 - 0.5 and (index >= 125 - 0.5 or z >= 0.5 - 0.005), (phrase, index)
        else:
            assert index <= 90 + 0.5 and (index <= 80 + 0.5 or z <= -0.5 + 0.005), (phrase, index)
    assert said == expected, (phrase, index, z)
    return label, said


def share_phrase(phrase: str, card: Card) -> bool:
    """A category's phrase: "gender: 80% Female (56% overall)" or a code's "Channel 2: 90%
    (30% overall)"; the share must be a majority and the card's."""
    if m := re.fullmatch(r"(.+) (-?[\d.]+): (\d+)% \((\d+)% overall\)", phrase):
        label, value, share = m[1], m[2], int(m[3])
    elif m := re.fullmatch(r"(.+): (\d+)% (.+) \((\d+)% overall\)", phrase):
        label, share, value = m[1], int(m[2]), m[3]
    else:
        return False
    assert share >= 100 * explain.MAJORITY - 0.5, phrase
    found = [s for (heading, v), s in card.shares.items() if v == value and label in heading]
    if value == "1":  # a 0/1 feature: a row of the card's rates table
        found += [s for (heading, v), s in card.shares.items() if heading.startswith("Rates")]
    assert any(abs(100 * s - share) <= 0.51 for s in found), (phrase, card.shares)
    return True


def check_card(card: Card) -> None:
    sentence = card.sentence.rstrip(".")
    everything_average = sentence.lower().startswith("close to average on every")
    if everything_average:
        for label, (index, z, feature) in card.numbers.items():
            if feature:
                assert index is None or 80 - 0.5 < index < 125 + 0.5, (card.name, label, index)
                assert index is not None or abs(z) < 0.5 + 0.005, (card.name, label, z)
        sentence = re.sub(r"^[Cc]lose to average on every [a-z ]+ \([^)]*\)(, )?", "", sentence)
        assert card.name.lower().startswith("close to average on every"), card.name
    every = re.match(r"(High|Low) on every [a-z ]+; most apart: ", sentence)
    if every:  # every feature high (or low): the three most apart are said
        side = explain.HIGH if every[1] == "High" else explain.LOW
        for label, (index, z, feature) in card.numbers.items():
            if feature:
                assert level_of_row(index, z) == side, (card.name, label, index, z)
        assert card.name.lower().startswith(f"{every[1].lower()} on every"), card.name
        sentence = sentence[every.end() :]
    said = []
    for phrase in [p for p in sentence.split(", ") if p]:
        level = level_of_phrase(phrase, card)
        if level is None:
            lowered = phrase[:1].lower() + phrase[1:]
            found = share_phrase(phrase, card) or share_phrase(lowered, card)
            assert found, f"{card.name}: a phrase the test cannot read: {phrase!r}"
            said.append(("share", SHARE))
        else:
            said.append(level)
    name_parts = [p.strip().lower() for p in re.sub(r" #\d+$", "", card.name).split(",")]
    if everything_average:
        name_parts = name_parts[1:]
    if every:  # the name says "High on every feature", the sentence the three most apart
        assert all(level == side for _, level in said if level != SHARE), card.sentence
        name_parts = name_parts[1:]
        said = [item for item in said if item[1] == SHARE]
    assert len(name_parts) == len(said), (card.name, card.sentence)
    for part, (_, level) in zip(name_parts, said, strict=True):
        if part.startswith("mostly "):
            assert level == SHARE, (card.name, card.sentence)
        elif part in WORDS:
            assert level == WORDS[part], (card.name, card.sentence)
        elif part.startswith("high "):
            assert level == explain.HIGH, (card.name, card.sentence)
        elif part.startswith("low "):
            assert level == explain.LOW, (card.name, card.sentence)
        elif part.startswith("average "):
            assert level == explain.AVERAGE, (card.name, card.sentence)
        else:
            pytest.fail(f"{card.name}: a name word the test does not know: {part!r}")


def customer_table(kind: str, folder: Path, shared: Path | None) -> tuple[Path, dict]:
    if kind == "default":
        return ROOT / "data" / "customers.csv", {}
    if kind == "wide":
        table = wide_behaviour_table(n=1500, seed=3)
        return write_planted_table(table, folder / "cards.csv"), {"missing": "median"}
    if kind == "campaign":
        table = mixed_marketing_table(n=1200, seed=11)
        return write_planted_table(table, folder / "marketing.tsv"), {"missing": "median"}
    if kind == "wholesale-like":
        table = wholesale_like_table(n=440, seed=3)
        return write_planted_table(table, folder / "wholesale.csv"), {}
    if kind == "orders":
        orders = order_lines(customers=800, seed=5)
        path = write_order_lines(orders, folder / "orders.csv")
        return path, {"transactions": True, "as_of": orders.snapshot}
    if shared is None:
        pytest.skip(f"{kind}: the shared datasets (../shared/data) are not here")
    if kind == "mall":
        return shared / "mall_customers.csv", {}
    if kind == "wholesale":
        return shared / "wholesale_customers.csv", {"id_column": "none"}
    return shared / "online_retail_sample.csv", {"transactions": True}


KINDS = ["default", "mall", "wide", "campaign", "wholesale-like", "wholesale", "orders", "retail"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_card_says_what_its_numbers_say(kind, tmp_path):
    from conftest import SHARED_DATA

    shared = SHARED_DATA if (SHARED_DATA / "mall_customers.csv").is_file() else None
    source, options = customer_table(kind, tmp_path, shared)
    run = segment_in_process(source, tmp_path / "out", "r1", **options)
    parser = Cards()
    parser.feed((run / "report.html").read_text())
    profiles = pd.read_parquet(run / "profiles.parquet")
    assert len(parser.cards) == len(profiles) >= 2
    assert [c.sentence for c in parser.cards] == profiles["summary"].tolist()
    assert [c.name for c in parser.cards] == profiles["segment_name"].tolist()
    for card in parser.cards:
        assert card.numbers, card.name
        check_card(card)
