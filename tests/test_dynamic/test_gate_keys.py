"""The per-gate column names of clip_stats: built, parsed and ordered in one place."""

from dance3d.dynamic.gate_keys import distinct_keep_rates, gate_key, keep_columns, parse_gate_key


def test_gate_key_round_trips():
    assert gate_key(12, "channel_keep") == "g12.channel_keep"
    assert parse_gate_key(gate_key(12, "channel_keep")) == (12, "channel_keep")


def test_other_columns_are_not_gate_keys():
    assert parse_gate_key("mac_fraction") is None
    assert parse_gate_key("frame_keep") is None
    assert parse_gate_key("keep.g0.frame_keep") is None


def test_keep_columns_sorts_by_gate_number_then_axis():
    columns = ["g10.frame_keep", "g2.tile_keep", "g2.mac_fraction", "g2.frame_keep", "label", "g2.channel_keep"]
    assert keep_columns(columns) == ["g2.frame_keep", "g2.channel_keep", "g2.tile_keep", "g10.frame_keep"]


def test_keep_columns_with_prefix_keeps_the_prefixed_names():
    assert keep_columns(["keep.g1.tile_keep", "g0.tile_keep", "keep.g0.frame_keep"], prefix="keep.") == [
        "keep.g0.frame_keep",
        "keep.g1.tile_keep",
    ]


def test_distinct_keep_rates_counts_levels_per_gate_and_axis():
    records = [
        {"g0.frame_keep": 0.5, "g0.channel_keep": 1.0, "g1.frame_keep": 0.25, "g0.mac_fraction": 0.3},
        {"g0.frame_keep": 0.75, "g0.channel_keep": 1.0, "g1.frame_keep": 0.25, "g0.mac_fraction": 0.4},
        {"g0.frame_keep": 0.75, "g0.channel_keep": 1.0, "g1.frame_keep": 0.5, "g0.mac_fraction": 0.4},
    ]
    assert distinct_keep_rates(records) == {"frame_keep": [2, 2], "channel_keep": [1]}
    assert distinct_keep_rates([]) == {}
