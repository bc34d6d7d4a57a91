"""SCTP codec (orchestrator.traffic.sctp): CRC32c and INIT/INIT-ACK checked against scapy's SCTP layer."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.sctp import SCTP, SCTPChunkAbort, SCTPChunkInit, SCTPChunkInitAck
from scapy.layers.sctp import crc32c as scapy_crc32c

from orchestrator.errors import ValidationError
from orchestrator.traffic import sctp


def test_crc32c_check_value():
    # The standard CRC-32C check value (RFC 3720 B.4 / every CRC catalogue).
    assert sctp.crc32c(b"123456789") == 0xE3069283
    assert sctp.crc32c(b"") == 0


@given(st.binary(max_size=300))
def test_crc32c_matches_scapy(data):
    # scapy returns the value already byte-swapped for its big-endian field; same wire bytes.
    assert struct.pack("<I", sctp.crc32c(data)) == struct.pack("!I", scapy_crc32c(data))


def test_init_is_byte_identical_to_scapy():
    ours = sctp.build_init(40000, 80, 0x11223344)
    theirs = bytes(SCTP(sport=40000, dport=80, tag=0) / SCTPChunkInit(
        init_tag=0x11223344, a_rwnd=106496, n_out_streams=10, n_in_streams=10,
        init_tsn=0x11223344))
    assert ours == theirs


def test_init_ack_checksum_and_fields_as_scapy_reads_them():
    pkt = sctp.build_init_ack(80, 40000, peer_tag=0x11223344, tag=0x55667788, cookie=b"abc")
    parsed = SCTP(pkt)
    assert (parsed.sport, parsed.dport, parsed.tag) == (80, 40000, 0x11223344)
    # scapy recomputes the checksum when it is None: identical bytes mean ours was right.
    rebuilt = parsed.copy()
    rebuilt.chksum = None
    assert bytes(rebuilt) == pkt
    chunk = parsed[SCTPChunkInitAck]
    assert chunk.init_tag == 0x55667788 and chunk.params[0].cookie == b"abc"


def test_abort_as_scapy_reads_it():
    pkt = sctp.build_abort(80, 40000, 7)
    assert SCTP(pkt).haslayer(SCTPChunkAbort) and SCTP(pkt).tag == 7


def test_parse_scapy_built_init():
    raw = bytes(SCTP(sport=1234, dport=5678, tag=0) / SCTPChunkInit(init_tag=99, init_tsn=5))
    src, dst, vtag, chunks = sctp.parse(raw)
    assert (src, dst, vtag) == (1234, 5678, 0)
    assert [c.type for c in chunks] == [sctp.INIT]
    assert sctp.parse_init(chunks[0]).initiate_tag == 99


@given(st.integers(1, 65535), st.integers(1, 65535), st.integers(1, 2**32 - 1),
       st.integers(1, 2**32 - 1), st.binary(max_size=40))
def test_round_trip(sport, dport, peer_tag, tag, cookie):
    src, dst, vtag, chunks = sctp.parse(sctp.build_init(sport, dport, peer_tag))
    assert (src, dst, vtag) == (sport, dport, 0)
    assert sctp.parse_init(chunks[0]).initiate_tag == peer_tag
    src, dst, vtag, chunks = sctp.parse(sctp.build_init_ack(dport, sport, peer_tag, tag,
                                                            cookie=cookie))
    assert (src, dst, vtag, chunks[0].type) == (dport, sport, peer_tag, sctp.INIT_ACK)
    fields = sctp.parse_init(chunks[0])
    assert fields.initiate_tag == tag
    ptype, plen = struct.unpack_from("!HH", fields.params)
    assert (ptype, fields.params[4:plen]) == (sctp.PARAM_STATE_COOKIE, cookie)


def test_bad_checksum_is_rejected_naming_the_field():
    pkt = bytearray(sctp.build_init(1, 2, 3))
    pkt[-1] ^= 1
    with pytest.raises(ValidationError) as exc:
        sctp.parse(bytes(pkt))
    assert exc.value.field == "checksum"
    assert sctp.parse(bytes(pkt), verify=False)[0] == 1


@pytest.mark.parametrize("data,field", [(b"\0" * 5, None),
                                        (sctp.build_init(1, 2, 3)[:14], None)])
def test_truncated_packets(data, field):
    # A 14-byte packet has a valid-looking header but a partial chunk header: no chunks.
    if len(data) < 12:
        with pytest.raises(ValidationError, match="shorter than"):
            sctp.parse(data, verify=False)
    else:
        assert sctp.parse(data, verify=False)[3] == []


def test_chunk_length_overrun_rejected():
    pkt = bytearray(sctp.build_init(1, 2, 3))
    struct.pack_into("!H", pkt, 14, 200)
    with pytest.raises(ValidationError, match="bad length"):
        sctp.parse(bytes(pkt), verify=False)


def test_invalid_inputs():
    with pytest.raises(ValidationError, match="initiate tag"):
        sctp.build_init(1, 2, 0)
    with pytest.raises(ValidationError) as exc:
        sctp.build_init(70000, 2, 1)
    assert exc.value.field == "src_port"


def test_strip_ipv4():
    hdr = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 132, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    assert sctp.strip_ipv4(hdr + b"xyz") == ("10.0.0.1", "10.0.0.2", b"xyz")
    with pytest.raises(ValidationError):
        sctp.strip_ipv4(b"\x60" + b"\0" * 39)
