"""``recipes.tracking.loggers.quick_getmodule``: the memoised ``inspect.getmodule`` W&B's start runs under
gives the same module as the real one for every frame of the stack, and is undone afterwards."""

from __future__ import annotations

import inspect

from recipes.tracking.loggers import quick_getmodule


def test_memo_matches_inspect_for_every_frame_and_is_undone():
    original = inspect.getmodule
    frames = []
    frame = inspect.currentframe()
    while frame:
        frames.append(frame)
        frame = frame.f_back
    expected = [original(f) for f in frames]
    with quick_getmodule():
        assert inspect.getmodule is not original
        assert [inspect.getmodule(f) for f in frames] == expected
        assert [inspect.getmodule(f) for f in frames] == expected  # from the memo
        assert inspect.getmodule(inspect) is inspect and inspect.getmodule(test_memo_matches_inspect_for_every_frame_and_is_undone).__name__ == __name__
    assert inspect.getmodule is original
