"""Minimal SCTP packet codec: common header, INIT / INIT-ACK / ABORT chunks, CRC32c.

Pure. This kernel has no SCTP sockets, so probes (orchestrator.traffic.probe) and the agnhost-like
server (orchestrator.images.agnhost) speak the INIT -> INIT-ACK handshake over raw sockets
(IPPROTO_SCTP) with packets built and parsed here (RFC 9260 sections 3 and 3.3.2-3.3.7).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from orchestrator.errors import ValidationError

IPPROTO_SCTP = 132

# Chunk types (RFC 9260 section 3.2).
INIT = 1
INIT_ACK = 2
ABORT = 6

# Parameter type of the State Cookie that INIT-ACK must carry.
PARAM_STATE_COOKIE = 7

_COMMON = struct.Struct("!HHII")          # src port, dst port, verification tag, checksum
_CHUNK = struct.Struct("!BBH")            # type, flags, length
_INIT_FIXED = struct.Struct("!IIHHI")     # initiate tag, a_rwnd, OS, MIS, initial TSN


def _crc32c_table() -> tuple[int, ...]:
    # Castagnoli polynomial, reflected (the form RFC 9260 appendix A uses).
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32c (Castagnoli) of ``data`` as an int, e.g. crc32c(b"123456789") == 0xE3069283."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


@dataclass(frozen=True)
class Chunk:
    type: int
    flags: int
    value: bytes


@dataclass(frozen=True)
class InitFields:
    """The fixed part of an INIT or INIT-ACK chunk, plus its raw parameters."""
    initiate_tag: int
    a_rwnd: int
    outbound_streams: int
    inbound_streams: int
    initial_tsn: int
    params: bytes = b""


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _chunk(ctype: int, flags: int, value: bytes) -> bytes:
    # The length field excludes padding; the padding is still sent (section 3.2).
    return _pad4(_CHUNK.pack(ctype, flags, _CHUNK.size + len(value)) + value)


def _packet(src_port: int, dst_port: int, vtag: int, chunks: bytes) -> bytes:
    for name, port in (("src_port", src_port), ("dst_port", dst_port)):
        if not 0 <= port <= 0xFFFF:
            raise ValidationError(f"port {port} out of range 0..65535", obj="SCTP packet",
                                  field=name)
    body = _COMMON.pack(src_port, dst_port, vtag & 0xFFFFFFFF, 0) + chunks
    # The CRC goes on the wire least-significant byte first (RFC 9260 appendix A).
    return body[:8] + struct.pack("<I", crc32c(body)) + body[12:]


def _init_value(f: InitFields) -> bytes:
    if f.initiate_tag == 0:
        raise ValidationError("initiate tag must not be 0", obj="SCTP INIT", field="tag")
    return _INIT_FIXED.pack(f.initiate_tag, f.a_rwnd, f.outbound_streams, f.inbound_streams,
                            f.initial_tsn) + f.params


def build_init(src_port: int, dst_port: int, tag: int, *, a_rwnd: int = 106496,
               streams: int = 10, initial_tsn: int | None = None) -> bytes:
    """An INIT packet (verification tag 0, as the section 8.5.1 rule for INIT requires)."""
    fields = InitFields(tag, a_rwnd, streams, streams, tag if initial_tsn is None else initial_tsn)
    return _packet(src_port, dst_port, 0, _chunk(INIT, 0, _init_value(fields)))


def build_init_ack(src_port: int, dst_port: int, peer_tag: int, tag: int, *,
                   cookie: bytes = b"calinet", a_rwnd: int = 106496, streams: int = 10,
                   initial_tsn: int | None = None) -> bytes:
    """An INIT-ACK answering an INIT whose initiate tag was ``peer_tag``.

    The packet's verification tag is the peer's initiate tag; ``tag`` is our own initiate tag.
    ``src_port``/``dst_port`` are from the responder's point of view (swapped w.r.t. the INIT).
    """
    cookie_param = _pad4(struct.pack("!HH", PARAM_STATE_COOKIE, 4 + len(cookie)) + cookie)
    fields = InitFields(tag, a_rwnd, streams, streams,
                        tag if initial_tsn is None else initial_tsn, cookie_param)
    return _packet(src_port, dst_port, peer_tag, _chunk(INIT_ACK, 0, _init_value(fields)))


def build_abort(src_port: int, dst_port: int, peer_tag: int) -> bytes:
    """An ABORT (e.g. a server answering an INIT to a port nobody serves)."""
    return _packet(src_port, dst_port, peer_tag, _chunk(ABORT, 0, b""))


def parse(data: bytes, *, verify: bool = True) -> tuple[int, int, int, list[Chunk]]:
    """Parse an SCTP packet (no IP header) -> (src_port, dst_port, vtag, chunks).

    Raises ValidationError naming the defect for a short, malformed or mis-checksummed packet.
    """
    if len(data) < _COMMON.size:
        raise ValidationError(f"packet of {len(data)} bytes is shorter than the 12-byte header",
                              obj="SCTP packet")
    src, dst, vtag, _ = _COMMON.unpack_from(data)
    if verify:
        (wire,) = struct.unpack_from("<I", data, 8)
        want = crc32c(data[:8] + b"\0\0\0\0" + data[12:])
        if wire != want:
            raise ValidationError(f"checksum {wire:#010x} != computed {want:#010x}",
                                  obj="SCTP packet", field="checksum")
    chunks = []
    off = _COMMON.size
    while off + _CHUNK.size <= len(data):
        ctype, flags, length = _CHUNK.unpack_from(data, off)
        if length < _CHUNK.size or off + length > len(data):
            raise ValidationError(f"chunk at offset {off} has bad length {length}",
                                  obj="SCTP packet", field=f"chunks[{len(chunks)}].length")
        chunks.append(Chunk(ctype, flags, bytes(data[off + _CHUNK.size:off + length])))
        off += length + (-length % 4)
    return src, dst, vtag, chunks


def parse_init(chunk: Chunk) -> InitFields:
    """The fixed fields of an INIT or INIT-ACK chunk."""
    if chunk.type not in (INIT, INIT_ACK) or len(chunk.value) < _INIT_FIXED.size:
        raise ValidationError(f"chunk type {chunk.type} with {len(chunk.value)} bytes is not an "
                              "INIT/INIT-ACK", obj="SCTP chunk", field="type")
    tag, rwnd, os_, mis, tsn = _INIT_FIXED.unpack_from(chunk.value)
    return InitFields(tag, rwnd, os_, mis, tsn, chunk.value[_INIT_FIXED.size:])


def strip_ipv4(datagram: bytes) -> tuple[str, str, bytes]:
    """Split what an AF_INET raw socket returns -> (src_ip, dst_ip, ip payload)."""
    if len(datagram) < 20 or datagram[0] >> 4 != 4:
        raise ValidationError("not an IPv4 datagram", obj="raw packet", field="version")
    ihl = (datagram[0] & 0x0F) * 4
    src = ".".join(str(b) for b in datagram[12:16])
    dst = ".".join(str(b) for b in datagram[16:20])
    return src, dst, datagram[ihl:]
