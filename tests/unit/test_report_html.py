"""orchestrator.report: report.html from the sample results.json (every step type, a failed
assertion, 50 nodes in 5 racks, a BGP timeline, hostile names): structure, counts, escaping,
no external resources, every inline SVG well-formed XML."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orchestrator.errors import ValidationError
from orchestrator.report import render
from orchestrator.report import svg as S
from orchestrator.report.html import relative_href
from orchestrator.report.topology import topology_svg

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "report" / "sample_results.json"
NS = "{http://www.w3.org/2000/svg}"
SECTIONS = ["topology", "assertions", "steps", "reachability", "rtt", "throughput", "http",
            "bgp", "pcaps"]
HOSTILE = "demo/<script>alert(1)</script>"


@pytest.fixture(scope="module")
def results() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def page(results) -> str:
    return render(results)


def svgs(page: str, cls: str | None = None) -> list[ET.Element]:
    """Every inline <svg> parsed as XML (raises if one is not well-formed)."""
    found = [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", page, re.S)]
    return [s for s in found if cls is None or cls in s.get("class", "").split()]


def classed(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(NS + tag) if cls in e.get("class", "").split()]


def section(page: str, key: str) -> str:
    m = re.search(rf'<section id="{key}">.*?</section>', page, re.S)
    assert m, f"section {key} missing"
    return m.group(0)


# --- page structure --------------------------------------------------------------------

def test_sections_present_in_order_after_the_header(page):
    ids = re.findall(r'<section id="([a-z]+)">', page)
    assert ids == SECTIONS
    assert page.index("<header>") < page.index('<section id="topology">')
    nav = re.search(r"<nav>(.*?)</nav>", page, re.S).group(1)
    assert re.findall(r'href="#([a-z]+)"', nav) == SECTIONS


def test_header_facts(page):
    header = re.search(r"<header>.*?</header>", page, re.S).group(0)
    assert '<span class="badge fail">FAILED</span>' in header
    assert "<b>23.7 s</b>" in header and "<b>7</b>" in header          # duration, seed
    assert "experiments/rack-failover.yaml" in header
    assert "<li>netem unavailable: delay/loss steps skipped</li>" in header
    assert "exabgp <b>5.0.15</b>" in header and "iptables <b>1.8.9 (nf_tables)</b>" in header
    assert "netem <b>no</b>" in header
    assert "<b>22 (1 failed)</b>" in header and "<b>3 (1 failed)</b>" in header
    assert "<title>calinet: rack-failover (failed)</title>" in page


def test_every_inline_svg_is_well_formed_xml(page):
    roots = svgs(page)
    # topology + 3 heatmaps + rtt + throughput + bgp timeline
    assert len(roots) == 7
    for root in roots:
        assert root.tag == NS + "svg"
        assert float(root.get("width")) > 0 and float(root.get("height")) > 0
        assert root.find(NS + "title") is not None


def test_sections_without_data_are_omitted():
    page = render({"format": 1, "experiment": {"name": "empty"}, "passed": True})
    assert "<section" not in page and "<nav>" not in page
    assert '<span class="badge pass">PASSED</span>' in page
    only_ping = {"format": 1, "experiment": {"name": "p"}, "steps": [
        {"index": 1, "type": "ping", "t": 0, "seconds": 1, "ok": True, "error": None,
         "measurements": {"src": "a/a", "dst": "b/b", "sent": 1, "received": 1, "loss": 0.0,
                          "rtt_ms": {"min": 1, "avg": 2, "max": 3}}}]}
    assert re.findall(r'<section id="([a-z]+)">', render(only_ping)) == ["steps", "rtt"]


def test_render_is_deterministic(results, page):
    assert render(copy.deepcopy(results)) == page


def test_not_an_object_is_a_validation_error():
    with pytest.raises(ValidationError, match="must be a JSON object"):
        render(["not", "results"])


# --- safety: escaping and no external resources ---------------------------------------------

def test_hostile_names_are_escaped_everywhere(page):
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;deny&lt;/b&gt;" in page and "<b>deny</b>" not in page
    assert "&lt;i&gt;hostile&lt;/i&gt; &amp; co." in page
    assert "timed out &amp; gave up" in page
    # the quoted label value ends up in a tooltip, quotes escaped
    assert "note=&quot;quoted&quot; &amp; &#x27;single&#x27;" in page


def test_no_external_resources(page):
    refs = re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", page, re.I)
    assert refs, "expected in-page anchors and pcap links"
    for ref in refs:
        assert not re.match(r"^\s*([a-z][a-z0-9+.-]*:|//)", ref, re.I) or ref == "data:,", ref
    assert "@import" not in page and "url(" not in page
    assert not re.search(r"<(script|iframe|object|embed|img|link rel=\"stylesheet\")", page, re.I)
    # the CSP tells the browser to load nothing at all
    assert ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:\">") in page


def test_pcaps_link_relative_files_only(page):
    pcaps = section(page, "pcaps")
    assert '<a href="pcaps/step9-node-1-eth0.pcap">pcaps/step9-node-1-eth0.pcap</a>' in pcaps
    assert '<a href="pcaps/step9%20node-2%20%3Ceth0%3E.pcap">' in pcaps
    assert "<code>https://evil.example/x.pcap</code>" in pcaps        # shown, not linked
    assert re.search(r'<td class="num">42</td>', pcaps)                # packets of step 9


@pytest.mark.parametrize("path,want", [
    ("pcaps/a.pcap", "pcaps/a.pcap"), ("a b.pcap", "a%20b.pcap"), ("/etc/passwd", None),
    ("https://x.example/a", None), ("javascript:alert(1)", None), ("../up.pcap", None),
    ("//host/a", None), ("", None), ("C:\\x.pcap", None)])
def test_relative_href(path, want):
    assert relative_href(path) == want


def test_control_characters_keep_svg_well_formed(results):
    r = copy.deepcopy(results)
    r["pods"][0]["key"] = "demo/bad\x01name\x1b"
    for root in svgs(render(r), "topology"):
        assert root is not None


# --- pictures ------------------------------------------------------------------------------

def test_heatmaps_one_cell_per_pair_with_colours(page):
    maps = svgs(page, "heatmap")
    assert len(maps) == 3
    # golden counts, by hand from the fixture's matrices (5 pods, 4 pods, 4 pods)
    want = [(25, 10, 10, 5), (16, 7, 5, 4), (16, 7, 5, 4)]
    for root, (cells, allowed, denied, self_) in zip(maps, want):
        assert len(classed(root, "rect", "cell")) == cells
        assert len(classed(root, "rect", "allowed")) == allowed
        assert len(classed(root, "rect", "denied")) == denied
        assert len(classed(root, "rect", "self")) == self_
    first = maps[0]
    assert "TCP/80" in first.find(NS + "title").text
    assert "UDP/53" in maps[1].find(NS + "title").text
    colours = {c.get("fill") for c in classed(first, "rect", "allowed")}
    assert colours == {S.GREEN}
    assert {c.get("fill") for c in classed(first, "rect", "denied")} == {S.RED}
    tips = [c.find(NS + "title").text for c in classed(first, "rect", "cell")]
    assert "demo/web-0 \u2192 demo/web-1: allowed (TCP/80)" in tips
    assert "demo/web-0 \u2192 demo/client: denied (TCP/80)" in tips
    legend = "".join(first.itertext())
    assert "allowed (10)" in legend and "denied (10)" in legend and "self (5)" in legend
    assert "step #3 baseline reachability \u00b7 TCP/80 \u00b7 probed in 0.4 s" in page


def test_topology_racks_nodes_and_pod_chips(page):
    (topo,) = svgs(page, "topology")
    assert len(classed(topo, "g", "rack")) == 5
    assert len(classed(topo, "g", "node")) == 50
    # 20 pods: node-7 holds 15, shown as 12 chips + "+3 more"
    assert len(classed(topo, "g", "pod")) == 5 + 12 + 1
    assert len(classed(topo, "g", "more")) == 1
    text = " ".join(topo.itertext())
    assert "rack rack-c \u00b7 10 nodes" in text and "+3 more" in text
    assert "172.18.0.51" in text and "10.244.9.2" in text
    # 6 columns at most: 50 nodes still fit a 1400 px page
    assert float(topo.get("width")) <= 1400


def test_topology_flat_cluster_has_no_rack_boxes():
    topo = {"name": "three", "nodes": [{"name": f"node-{i}", "ip": f"172.18.0.{i + 1}"}
                                       for i in (1, 2, 3)], "racks": []}
    root = ET.fromstring(topology_svg(topo, [{"key": "d/a", "node": "node-2", "ip": "10.0.0.1"}]))
    assert not classed(root, "g", "rack")
    assert len(classed(root, "g", "node")) == 3 and len(classed(root, "g", "pod")) == 1
    assert topology_svg({"nodes": []}, []) == ""


def test_rtt_chart_bars_and_no_reply(page):
    (rtt,) = svgs(page, "rtt")
    pings = classed(rtt, "g", "ping")
    assert len(pings) == 2
    assert len(classed(pings[0], "rect", "bar")) == 3
    assert [t.text for t in pings[0].iter(NS + "text")][:3] == ["0.031", "0.052", "0.094"]
    assert not classed(pings[1], "rect", "bar")
    text = " ".join(pings[1].itertext())
    assert "no reply" in text and "loss 100%" in text


def test_throughput_bars_labels_and_interval_lines(page):
    (tp,) = svgs(page, "throughput")
    runs = classed(tp, "g", "iperf")
    assert len(runs) == 3                                   # two iperf steps + the baseline
    texts = " ".join(tp.itertext())
    assert "12.9 Gbit/s" in texts and "1.05 Gbit/s" in texts and "40.2 Gbit/s" in texts
    assert "#22 baseline" in texts
    points = [len(next(r.iter(NS + "polyline")).get("points").split()) for r in runs]
    assert points == [3, 3, 2]                              # one point per interval
    fills = [classed(r, "rect", "bar")[0].get("fill") for r in runs]
    assert fills == [S.BLUE, S.BLUE, S.MUTED]                # the baseline is grey


def test_http_table(page):
    http = section(page, "http")
    assert "200\u00d719, 503\u00d71" in http
    assert "<code>http://10.244.1.2:80/</code>" in http
    assert '<tr class="fail">' in http                        # 19 of 20 ok


def test_assertions_and_steps_tables(page):
    a = section(page, "assertions")
    assert len(re.findall(r"<tr class=\"ok\">", a)) == 2
    assert len(re.findall(r"<tr class=\"fail\">", a)) == 1
    steps = section(page, "steps")
    assert len(re.findall(r"<tr class=\"(?:ok|fail)\">", steps)) == 22
    failed = re.findall(r'<tr class="fail">(.*?)</tr>', steps, re.S)
    assert len(failed) == 1 and "<td>15</td>" in failed[0]


def test_long_assertion_values_fold_into_details():
    long = {"pairs": [f"x/p{i} -> y/q{i}" for i in range(20)]}
    page = render({"experiment": {"name": "x"}, "assertions": [
        {"step": 1, "expr": "e", "ok": False, "actual": long, "expected": "short",
         "message": "m"}]})
    a = section(page, "assertions")
    assert a.count("<details>") == 1 and "<code>short</code>" in a
    assert "x/p19 -&gt; y/q19" in a


def test_command_line_writes_report_beside_results(tmp_path, results):
    from orchestrator.report.__main__ import main

    src = tmp_path / "results.json"
    src.write_text(json.dumps(results))
    assert main([str(src)]) == 0
    assert (tmp_path / "report.html").read_text() == render(results)
    assert main([str(tmp_path / "missing.json")]) == 1


def test_bgp_timeline_lanes_markers_and_faults(page, results):
    (bgp,) = svgs(page, "bgp-timeline")
    labels = [t.text for t in bgp.iter(NS + "text") if t.get("class") == "label"]
    assert labels == ["node-1", "node-2", "node-4", "node-12", "node-50"]   # topology order
    assert len(classed(bgp, "polygon", "peer-down")) == 6
    assert len(classed(bgp, "polygon", "peer-up")) == 6
    assert len(classed(bgp, "polygon", "routes")) == 10
    faults = classed(bgp, "g", "fault")
    assert [f.find(NS + "title").text for f in faults] == [
        "t=15 s: link down (node-3)", "t=18.4 s: link up (node-3)",
        "t=19 s: node fail (node-12)", "t=21 s: node restore (node-12)",
        "t=22.56 s: speaker killed (node-50)"]
    legend = " ".join(bgp.itertext())
    assert "peer up" in legend and "peer down" in legend and "fault step" in legend


def test_bgp_faults_fall_back_to_fault_steps(results):
    r = copy.deepcopy(results)
    r["bgp_timeline"] = [e for e in r["bgp_timeline"] if e["kind"] != "fault"]
    (bgp,) = svgs(render(r), "bgp-timeline")
    assert [f.find(NS + "title").text for f in classed(bgp, "g", "fault")] == [
        "t=15 s: link-down node-3", "t=18.4 s: link-up node-3",
        "t=19 s: fail-node node-12", "t=21 s: restore-node node-12",
        "t=22.56 s: kill-speaker node-50"]


# --- formatting helpers ----------------------------------------------------------------------

@pytest.mark.parametrize("value,want", [(12.0, "12"), (12.9, "12.9"), (0.052, "0.05"),
                                        (0.004, "0.004"), (None, "-"), (True, "-"),
                                        (float("nan"), "-")])
def test_fmt(value, want):
    assert S.fmt(value) == want


def test_nice_ticks():
    assert S.nice_ticks(0.094) == [0, 0.02, 0.04, 0.06, 0.08, 0.1]
    assert S.nice_ticks(12.9) == [0, 5, 10, 15]
    assert S.nice_ticks(0) == [0, 1]
