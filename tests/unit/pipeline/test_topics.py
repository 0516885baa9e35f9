from pathlib import Path

import orjson

from streams.cli import bundled
from streams.pipeline.producer import route
from streams.pipeline.sequencer import Sequencer, canonical_key
from streams.pipeline.topics import INPUTS, OUTPUTS, Topics
from tests.helpers import schema_validator


def test_every_topic_has_a_schema():
    for spec in (*INPUTS, *OUTPUTS):
        schema_validator(spec.schema)


def test_the_cascade_routes_to_topics_whose_schemas_it_matches():
    topics = Topics("risk.")
    bad = []
    for line in Path(bundled("cascade.jsonl")).read_bytes().splitlines():
        topic, key = route(topics, line)
        assert topic.startswith("risk.")
        event = orjson.loads(line)
        spec = next(s for s in INPUTS if topics.name(s.name) == topic)
        assert key == str(event[spec.key_field]).encode()
        if list(schema_validator(spec.schema).iter_errors(event)):
            bad.append(event)
    assert len(bad) == 2  # the NaN mark and the negative quantity


def test_the_bundled_file_is_in_canonical_order():
    events = [
        orjson.loads(line) for line in Path(bundled("cascade.jsonl")).read_bytes().splitlines()
    ]
    keys = [canonical_key(e) for e in events]
    assert keys == sorted(keys)


def test_sequencer_releases_by_watermark_in_order():
    seq: Sequencer[str] = Sequencer()
    for key, item in [((5, 6, "BTC"), "mark5"), ((3, 4, "a"), "fill3"), ((5, 1, "a"), "bal5")]:
        seq.push(key, item)
    assert seq.release(5) == ["fill3"]  # strictly before the watermark
    assert seq.release(None) == ["bal5", "mark5"]  # balance before mark at one time
