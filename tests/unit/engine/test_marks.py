"""The marks by name and as a column by symbol index stay one thing."""

import copy
import pickle

from streams.engine.marks import NO_MARK, Marks


def test_the_column_follows_every_write_and_survives_a_copy():
    marks = Marks(["ADAUSDT", "BTCUSDT", "ETHUSDT"])
    marks["ETHUSDT"] = 3_000 * 10**8
    marks["BTCUSDT"] = 60_000 * 10**8
    marks["ETHUSDT"] = 2_950 * 10**8  # a later mark replaces the earlier one
    want = [NO_MARK, 60_000 * 10**8, 2_950 * 10**8]  # ADA has no mark yet
    assert marks.by_index.tolist() == want
    copied = pickle.loads(pickle.dumps(marks))  # noqa: S301  # our own bytes, just made
    for again in (copied, copy.deepcopy(marks)):
        assert dict(again) == {"BTCUSDT": 60_000 * 10**8, "ETHUSDT": 2_950 * 10**8}
        assert again.by_index.tolist() == want
        again["ADAUSDT"] = 5 * 10**7  # and it is still kept in step
        assert again.by_index.tolist()[0] == 5 * 10**7
    assert marks.by_index.tolist()[0] == NO_MARK  # the copies are copies
