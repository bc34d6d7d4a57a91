"""restore_session against real iptables in a throwaway netns: one process commits block after
block, each visible before it exits; a refused block keeps the previous rules and names its
own line; blocks larger than a pipe; other writers in between; nothing left running."""

from __future__ import annotations

import pytest

from orchestrator.errors import CommandError
from orchestrator.host.runner import DEFAULT
from orchestrator.node.restore_session import RestoreSession

pytestmark = pytest.mark.root


def save(ns):
    return DEFAULT.run(["iptables-save", "-t", "filter"], netns=ns).stdout


def block(chain, rules=1, port=1000):
    return (f"*filter\n:{chain} - [0:0]\n"
            + "".join(f"-A {chain} -p tcp --dport {port + j} -j ACCEPT\n" for j in range(rules))
            + "COMMIT\n")


@pytest.fixture
def session(make_netns):
    ns = make_netns("calinet-rstest", "10.9.1.1")
    s = RestoreSession(DEFAULT, netns=ns)
    if not s.available:
        pytest.skip("/proc/<pid>/syscall is not readable here: the agent forks per write")
    yield s, ns
    s.close()     # before make_netns checks that nothing is left running in the netns


def test_blocks_commit_one_after_another_in_one_process(session):
    s, ns = session
    for i in range(5):
        s.write(block(f"cali-tw-s{i}", rules=3))
        text = save(ns)        # committed while the process still runs
        assert f":cali-tw-s{i} " in text and f"-A cali-tw-s{i} -p tcp -m tcp --dport 1002" in text
    assert s.spawned == 1 and s.proc.poll() is None
    # re-declaring a chain flushes it, as with a forked --noflush restore
    s.write(block("cali-tw-s0", rules=1, port=2000))
    text = save(ns)
    assert "--dport 2000" in text and "-A cali-tw-s0 -p tcp -m tcp --dport 1000" not in text


def test_a_refused_block_keeps_the_rules_names_its_line_and_the_next_write_works(session):
    s, ns = session
    s.write(block("cali-tw-ok", rules=2))
    before = save(ns)
    bad = "*filter\n:cali-tw-new - [0:0]\n-A cali-tw-new -j ACCEPT\n-A cali-nosuch -j ACCEPT\nCOMMIT\n"
    with pytest.raises(CommandError) as err:
        s.write(bad)
    assert "line 4 failed" in err.value.stderr, err.value.stderr   # the block's own line
    strip = lambda t: [ln for ln in t.splitlines() if not ln.startswith("#")]  # noqa: E731
    assert strip(save(ns)) == strip(before)                          # atomic: nothing of it
    s.write(block("cali-tw-after"))
    assert ":cali-tw-after " in save(ns) and s.spawned == 2


def test_a_block_larger_than_the_pipe_and_other_writers_in_between(session):
    s, ns = session
    big = block("cali-pi-big", rules=3000)         # ~150 KB: more than a pipe holds
    assert len(big) > 65536
    s.write(big)
    assert save(ns).count("-A cali-pi-big ") == 3000
    # Another process changes the table between two writes of the session (kube-proxy's
    # nat writes, a user's iptables): the session's next block still lands on top of it.
    DEFAULT.run(["iptables", "-N", "other-chain"], netns=ns)
    DEFAULT.run(["iptables", "-F", "cali-pi-big"], netns=ns)
    s.write(block("cali-tw-next") + block("cali-pi-big", rules=2))
    text = save(ns)
    assert ":other-chain " in text and ":cali-tw-next " in text
    assert text.count("-A cali-pi-big ") == 2 and s.spawned == 1


def test_where_completion_cannot_be_seen_the_session_forks_instead(session, caplog):
    s, ns = session
    s.read_nr = "999"       # as if read(0) could never be recognised in /proc/<pid>/syscall
    s.write(block("cali-tw-forked"))
    assert ":cali-tw-forked " in save(ns)           # written all the same, by a fork
    assert s.disabled and not s.available and s.proc is None
    assert "forking iptables-restore per write" in caplog.text
    s.write(block("cali-tw-forked2"))
    assert ":cali-tw-forked2 " in save(ns)
