"""The autoscaler's rule (labctl.autoscale.decide): when it adds and removes web nodes, and that it does not flap.

Pure: samples in, a decision out (the controller around it, its leader
election and a leader killed mid-scale are the integration test and the
chaos scenario kill-autoscaler-mid-scale-out).
"""
import pytest

from labctl.autoscale import Policy, Sample, decide

P = Policy(min_nodes=2, max_nodes=8, target=0.6, tolerance=0.15, in_margin=0.8, react_s=4, calm_s=20, cooldown_s=10)
NOW = 1000.0
SLOTS = 8


def sample(at, busy, serving, queued=0, rate=10, served=10):
    """A sample of SERVING nodes each BUSY (0-1) as a single queue: c / (1 + c) with c requests in hand."""
    in_hand = busy / (1 - busy) * serving
    return Sample(at, serving, in_hand, queued, serving * SLOTS, rate, 50, served)


def samples(busy, serving, seconds, now=NOW, **kw):
    """One sample a second for SECONDS up to NOW."""
    return [sample(now - seconds + i + 1, busy, serving, **kw) for i in range(seconds)]


def test_busy_is_the_single_queue_utilisation_of_the_requests_in_hand():
    assert Sample(0, 2, 2, 0, 16, 0, 0).busy == pytest.approx(0.5)       # one request in hand per node
    assert Sample(0, 2, 6, 2, 16, 0, 0).busy == pytest.approx(0.8)       # four, queued ones included
    assert Sample(0, 4, 0, 0, 32, 0, 0).busy == 0 and Sample(0, 0, 3, 0, 0, 0, 0).busy == 0


def test_below_min_it_scales_out_to_min_at_once():
    d = decide(P, 1, [], NOW, NOW)
    assert (d.kind, d.to) == ("out", 2) and "MIN" in d.reason


def test_above_max_it_scales_in_to_max():
    d = decide(P, 9, samples(0.9, 9, 30), NOW, 0)
    assert (d.kind, d.to) == ("in", 8)


@pytest.mark.parametrize("busy, size, load, to", [
    pytest.param(0.75, 2, {}, 3, id="just over the threshold: the nodes the work needs"),
    pytest.param(0.9, 3, {}, 5, id="ceil(3 x 0.9 / 0.6) = 5"),
    pytest.param(0.95, 2, {"queued": 40, "rate": 70, "served": 35}, 6,
                 id="queueing: twice what the nodes get through, ceil(2 x 2 / 0.6) = 7, at most 4 more"),
    pytest.param(0.95, 2, {"queued": 40, "rate": 40, "served": 35}, 4, id="queueing, a little more than served"),
    pytest.param(0.95, 6, {"queued": 40, "rate": 200, "served": 70}, 8, id="never past MAX"),
])
def test_a_busy_tier_scales_out_to_what_the_work_needs(busy, size, load, to):
    d = decide(P, size, samples(busy, size, 5, **load), NOW, 0)
    assert (d.kind, d.to) == ("out", to), d
    assert "busy" in d.reason and d.figures["serving"] == size


def test_at_the_threshold_or_under_it_holds():
    assert decide(P, 3, samples(0.68, 3, 5), NOW, 0).kind == "hold"
    assert decide(P, 3, samples(0.45, 3, 30), NOW, 0).kind == "hold"   # 1.35 busy nodes: 2 would be 68 %


def test_one_busy_second_is_not_a_trend():
    window = samples(0.1, 3, 3) + [sample(NOW + 0.5, 0.95, 3)]
    assert decide(P, 3, window, NOW + 0.5, 0).kind == "hold"


def test_no_decision_while_cooling_down():
    assert decide(P, 3, samples(0.9, 3, 5), NOW, NOW - 5).kind == "hold"
    assert decide(P, 3, samples(0.9, 3, 5), NOW, NOW - 11).kind == "out"


def test_scale_in_waits_for_a_whole_calm_window():
    assert decide(P, 4, samples(0.0, 4, 10), NOW, 0).kind == "hold"
    d = decide(P, 4, samples(0.0, 4, 21), NOW, 0)
    assert (d.kind, d.to) == ("in", 2)


def test_scale_in_keeps_enough_nodes_for_the_busiest_second_of_the_window():
    window = samples(0.1, 6, 21)
    window[5] = sample(window[5].at, 1 / 3, 6)   # one second worth 2 busy nodes
    d = decide(P, 6, window, NOW, 0)
    assert (d.kind, d.to) == ("in", 5), d        # ceil(2 / 0.48)


def test_scale_in_at_most_halves_the_tier():
    d = decide(P, 8, samples(0.0, 8, 21), NOW, 0)
    assert (d.kind, d.to) == ("in", 4), d


def test_no_node_serving_is_nothing_to_measure():
    assert decide(P, 3, samples(0.0, 0, 5), NOW, 0).kind == "hold"


@pytest.mark.parametrize("size", range(2, 9))
def test_it_does_not_flap(size):
    """The same work (busy x nodes) never asks for a scale-in right after a scale-out, nor the reverse."""
    for tenths in range(1, 60):
        work = tenths / 10
        if work >= size:
            break
        first = decide(P, size, samples(work / size, size, 25), NOW, 0)
        if first.kind in ("out", "in"):
            again = decide(P, first.to, samples(work / first.to, first.to, 25), NOW, 0)
            assert again.kind in ("hold", first.kind), (work, size, first, again)


def test_bounds_that_make_no_sense_are_refused():
    with pytest.raises(SystemExit, match="MIN"):
        Policy(min_nodes=5, max_nodes=2).check()
    with pytest.raises(SystemExit, match="MAX"):
        Policy(min_nodes=1, max_nodes=9).check()
    with pytest.raises(SystemExit, match="TARGET"):
        Policy(target=1).check()
