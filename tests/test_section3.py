from pathlib import Path

import pytest
from helpers import write_canonical

from rib.insight.section3 import section3_tables, write_section3

# Two sessions written out by hand. (sku, activity, dwell seconds)
SESSIONS = {
    "a": [
        ("x", 5, 30),
        ("x", 7, 30),
        ("x", 9, 30),  # visit 1: search, spec, cart        (dwell 25-60)
        ("y", 2, 5),  # visit 2: shop list                 (0-9)
        ("x", 4, 200),
        ("x", 6, 200),
        ("x", 10, 200),  # visit 3: from cart, comments, order (>120)
    ],
    "b": [
        ("z", 5, 70),
        ("z", 6, 70),  # visit 1: search, comments          (61-120)
        ("x", 1, 12),  # visit 2: home                      (10-24)
    ],
}


def by(rows, key):
    return {row[key]: row for row in rows}


@pytest.fixture
def tables(tmp_path):
    return section3_tables(write_canonical(tmp_path / "mb.parquet", SESSIONS))


def test_conversion_by_activity_matches_a_hand_count(tables):
    rows = by(tables["conversion_by_activity"], "activity")
    # x is ordered at the end of session a: every earlier micro-behavior on x in a converts.
    assert (rows[5]["occurrences"], rows[5]["converted"]) == (2, 1)  # a's search on x yes, b's on z no
    assert (rows[9]["occurrences"], rows[9]["converted"]) == (1, 1)
    assert (rows[4]["occurrences"], rows[4]["converted"]) == (1, 1)
    assert (rows[6]["occurrences"], rows[6]["converted"]) == (2, 1)
    assert (rows[2]["occurrences"], rows[2]["converted"]) == (1, 0)  # y is never ordered
    assert (rows[1]["occurrences"], rows[1]["converted"]) == (1, 0)  # x in b: no order in b
    assert (rows[10]["occurrences"], rows[10]["converted"]) == (1, 0)  # nothing after the order
    assert rows[6]["conversion_rate"] == pytest.approx(0.5)


def test_conversion_by_dwell_uses_the_papers_buckets(tables):
    rows = by(tables["conversion_by_dwell"], "dwell_label")
    assert (rows["25-60s"]["occurrences"], rows["25-60s"]["converted"]) == (3, 3)
    assert (rows[">120s"]["occurrences"], rows[">120s"]["converted"]) == (3, 2)
    assert (rows["0-9s"]["occurrences"], rows["0-9s"]["converted"]) == (1, 0)
    assert (rows["61-120s"]["occurrences"], rows["10-24s"]["occurrences"]) == (2, 1)


def test_visits_by_click_source_modules_and_dwell(tables):
    modules = by(tables["source_vs_modules"], "source")
    assert modules[5]["visits"] == 2 and modules[5]["visits_with_7"] == 1 and modules[5]["visits_with_6"] == 1
    assert modules[5]["share_7"] == pytest.approx(0.5)
    assert modules[4]["visits_with_6"] == 1 and modules[2]["visits_with_6"] == 0
    dwell = {(r["source"], r["dwell_label"]): r for r in tables["dwell_vs_source"]}
    assert dwell[(5, "25-60s")]["visits"] == 1 and dwell[(5, "25-60s")]["share"] == pytest.approx(0.5)
    assert dwell[(4, ">120s")]["share"] == pytest.approx(1.0)
    by_dwell = by(tables["dwell_vs_modules"], "dwell_label")
    assert by_dwell[">120s"]["visits_with_6"] == 1 and by_dwell["0-9s"]["share_6"] == 0


def test_run_writes_tables_and_labelled_figures(tmp_path):
    src = write_canonical(tmp_path / "mb.parquet", SESSIONS)
    document = write_section3(src, tmp_path / "out", synthetic=True)
    assert set(document["figures"]) == {
        "conversion_by_activity",
        "conversion_by_dwell",
        "source_vs_modules",
        "dwell_vs_source",
        "dwell_vs_modules",
    }
    for path in document["figures"].values():
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / "section3.json").exists()


def test_the_case_study_heatmap_says_its_colour_is_the_attention_weight():
    import matplotlib.pyplot as plt

    from rib.insight.explain import HEATMAP_SCALE, heatmap_figure

    explanation = {"sku": {"attention": [0.2, 0.8], "rank": 3}, "sku_micro": {"attention": [0.6, 0.4], "rank": None}}
    fig = heatmap_figure(explanation, ["p1 a5 d2", "p2 a9 d3"], "next product p3")
    colorbar = fig.axes[-1]
    assert colorbar.get_ylabel() == HEATMAP_SCALE and "attention weight" in HEATMAP_SCALE
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["SKU (rank 3)", "SKU+Micro-behaviors (rank miss)"]
    plt.close(fig)
