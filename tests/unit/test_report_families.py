"""report.html of a dual-stack run (tests/fixtures/report/dual_stack_results.json, written by
experiments/dual-stack.yaml on a real testbed): both families' matrices labelled IPv4 / IPv6,
where they disagree, the side-by-side table, family columns and chart labels; results without
families (written before dual stack) get none of it."""

from __future__ import annotations

import copy
import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orchestrator.report import families, render

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report"
NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def results() -> dict:
    return json.loads((FIXTURES / "dual_stack_results.json").read_text())


@pytest.fixture(scope="module")
def page(results) -> str:
    return render(results)


def section(page: str, key: str) -> str:
    m = re.search(rf'<section id="{key}">.*?</section>', page, re.S)
    assert m, f"section {key} missing"
    return m.group(0)


def rows(fragment: str) -> list[list[str]]:
    """Each body row's cells as plain text."""
    body = re.search(r"<tbody>(.*?)</tbody>", fragment, re.S).group(1)
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
            for r in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def heads(fragment: str) -> list[str]:
    return re.findall(r"<th>(.*?)</th>", fragment)


def heatmaps(page: str) -> list[ET.Element]:
    roots = [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", page, re.S)]
    return [r for r in roots if "heatmap" in r.get("class", "").split()]


def cells(root: ET.Element, cls: str) -> int:
    return sum(1 for e in root.iter(NS + "rect") if cls in e.get("class", "").split())


def test_the_families_section_comes_after_the_steps(page):
    assert re.findall(r'<section id="([a-z]+)">', page) == [
        "topology", "assertions", "steps", "families", "reachability", "rtt", "throughput",
        "http", "bgp"]
    assert '<a href="#families">IPv4 and IPv6</a>' in page


def test_side_by_side_table_golden(page):
    table = section(page, "families")
    assert heads(table) == ["measurement", "IPv4", "IPv6", "IPv6 \u00f7 IPv4"]
    assert rows(table) == [
        ["reachability TCP/80, 6 pods", "30/30 allowed (step #2)", "30/30 allowed (step #2)",
         "same on every pair"],
        ["ping x/a \u2192 x/c", "avg 0.144 ms, loss 0% (step #3)",
         "avg 0.159 ms, loss 0% (step #4)", "1.1\u00d7"],
        ["HTTP y/a \u2192 x/b", "10/10 ok, p50 0.478 ms (step #5)",
         "10/10 ok, p50 0.506 ms (step #6)", "1.06\u00d7"],
        ["iperf3 TCP x/a \u2192 x/c", "9.1 Gbit/s (step #7)", "9.49 Gbit/s (step #8)",
         "1.04\u00d7"],
        ["reachability TCP/80, 6 pods", "15/30 allowed (step #11)", "30/30 allowed (step #11)",
         "15 pairs differ"]]


def test_a_matrix_per_family_labelled_and_coloured(page):
    maps = heatmaps(page)
    titles = [m.find(NS + "title").text for m in maps]
    assert [("IPv4 TCP/80" in t, "IPv6 TCP/80" in t) for t in titles] == [
        (True, False), (False, True), (True, False), (False, True)]
    # (allowed, denied) cells: all open, then x closed over IPv4 only (15 pairs into x)
    assert [(cells(m, "allowed"), cells(m, "denied")) for m in maps] == [
        (30, 0), (30, 0), (15, 15), (30, 0)]
    tips = [t.text for t in maps[2].iter(NS + "title")]
    assert "y/a \u2192 x/a: denied (IPv4 TCP/80)" in tips
    reach = section(page, "reachability")
    assert ("step #11 x is closed over IPv4, open over IPv6 \u00b7 IPv4 TCP/80 \u00b7 probed in "
            "0.51 s") in html.unescape(reach)


def test_where_the_families_disagree_is_spelled_out(page):
    notes = [html.unescape(n) for n in re.findall(r'class="caption family-diff">(.*?)</p>', page)]
    assert notes == [
        "step #2 every pod reaches every pod, in both families \u00b7 TCP/80: IPv4 and IPv6 "
        "agree on all 30 pairs",
        "step #11 x is closed over IPv4, open over IPv6 \u00b7 TCP/80: IPv4 and IPv6 differ on "
        "15 of 30 pairs: x/a \u2192 x/b (IPv4 denied, IPv6 allowed), x/a \u2192 x/c (IPv4 "
        "denied, IPv6 allowed), x/b \u2192 x/a (IPv4 denied, IPv6 allowed), x/b \u2192 x/c "
        "(IPv4 denied, IPv6 allowed), x/c \u2192 x/a (IPv4 denied, IPv6 allowed), x/c \u2192 "
        "x/b (IPv4 denied, IPv6 allowed) and 9 more"]


def test_family_columns_and_chart_labels(page):
    steps = section(page, "steps")
    assert heads(steps)[3] == "family"
    assert [r[3] for r in rows(steps)] == ["", "IPv4 + IPv6", "IPv4", "IPv6", "IPv4", "IPv6",
                                           "IPv4", "IPv6", "", "", "IPv4 + IPv6"]
    http = section(page, "http")
    assert heads(http)[2] == "family"
    assert [(r[2], r[3]) for r in rows(http)] == [
        ("IPv4", "http://10.244.0.128:80/"), ("IPv6", "http://[fd00:10:244::80]:80/")]
    rtt = " ".join(re.search(r'<section id="rtt">.*?</section>', page, re.S).group(0).split())
    assert ">#3 IPv4 x/c<" in rtt and ">#4 IPv6 x/c<" in rtt
    assert "x/a \u2192 x/c (fd00:10:244::40)" in html.unescape(rtt)
    tp = section(page, "throughput")
    assert ">#7 IPv4 x/c<" in tp and ">#8 IPv6 x/c<" in tp


def test_header_and_topology_name_both_families(page):
    header = re.search(r"<header>.*?</header>", page, re.S).group(0)
    assert '<span class="k">pod families</span> <b>IPv4, IPv6</b>' in header
    topo = section(page, "topology")
    assert "3 nodes, 7 pods (IPv4, IPv6); underlay 172.18.0.0/16 and fd00:172:18::/64" in topo
    # a chip shows the primary address; its tooltip has the IPv6 one too, the node's as well
    assert "pod x/c\nIP 10.244.0.64\nIP fd00:10:244::40\napp=c" in html.unescape(topo)
    assert "node node-3\nIP 172.18.0.4\nIP fd00:172:18::4\n" in html.unescape(topo)


def test_one_family_has_no_side_by_side_table(results):
    r = copy.deepcopy(results)
    for s in r["steps"]:
        m = s["measurements"]
        if "matrices" in m:
            m["matrices"] = [x for x in m["matrices"] if x["family"] == 4]
        if m.get("family") == 6:
            s["measurements"] = {}
    page = render(r)
    assert '<section id="families">' not in page and 'class="caption family-diff"' not in page
    assert len(heatmaps(page)) == 2


def test_results_without_families_are_not_labelled():
    sample = json.loads((FIXTURES / "sample_results.json").read_text())
    page = render(sample)
    assert "family" not in heads(section(page, "steps"))
    assert "family" not in heads(section(page, "http"))
    assert "IPv4" not in page and "IPv6" not in page


def test_matrix_diff_needs_the_same_pods():
    a = {"family": 4, "pods": ["p/a", "p/b"], "allowed": [[None, True], [False, None]]}
    b = {"family": 6, "pods": ["p/a", "p/b"], "allowed": [[None, True], [True, None]]}
    assert families.matrix_diff(a, b) == [("p/b", "p/a", False, True)]
    assert families.matrix_diff(a, {**b, "pods": ["p/a", "p/c"]}) is None
    assert families.diff_text(a, {**b, "pods": ["p/b", "p/a"]}) == \
        "IPv4 and IPv6 probed different pods"
    assert families.label(True) == "" and families.label(6) == "IPv6"


def test_run_summary_counts_each_family():
    import json
    from pathlib import Path

    from orchestrator.cli.run_cmd import _summary
    results = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "report" /
                          "dual_stack_results.json").read_text())
    rec = next(s for s in results["steps"] if s["type"] == "probe-matrix")
    assert _summary(rec) == "IPv4 30/30, IPv6 30/30 pairs allowed"
