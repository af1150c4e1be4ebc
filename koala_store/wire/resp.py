"""Redis RESP (v2/v3) as recorded bytes: command parsing and value framing."""

from __future__ import annotations

from msgspec import Struct

_SIMPLE = b"+-:_#,("  # one-line RESP types (v2 and v3)
_BULK = b"$!="  # length-prefixed RESP types
_AGGREGATE = b"*~>%|"  # counted RESP types (% and | hold pairs)


def parse_command(data: bytes) -> list[bytes] | None:
    """The arguments of one Redis command (RESP array or inline), or None if it is not one."""
    if data.startswith(b"*"):
        parsed = _array(data, 0)
        return parsed[0] if parsed and parsed[0] else None
    # Inline commands (redis-cli over telnet, PING health checks).
    if data.endswith(b"\r\n") and data.count(b"\r\n") == 1 and data[:1].isalpha():
        return data[:-2].split()
    return None


def parse_commands(data: bytes) -> list[list[bytes]] | None:
    """Every command of a request (a pipeline sends several back to back), or None when the
    bytes are not Redis commands."""
    if not data.startswith(b"*"):
        args = parse_command(data)
        return [args] if args and args[0].isalpha() else None
    out = []
    pos = 0
    size = len(data)
    while pos < size:
        if data[pos] == 0x2A:  # "*": an array of bulk strings
            parsed = _array(data, pos)
            if parsed is None:
                return None
            args, pos = parsed
        else:  # an inline command, one line
            end = data.find(b"\r\n", pos)
            if end < 0 or not data[pos : pos + 1].isalpha():
                return None
            args, pos = data[pos:end].split(), end + 2
        if not args or not args[0].isalpha():
            return None
        out.append(args)
    return out


def _array(data: bytes, pos: int) -> tuple[list[bytes], int] | None:
    """The arguments of the RESP array of bulk strings at `pos`, and where it ends."""
    find = data.find
    line_end = find(b"\r\n", pos)
    if line_end < 0:
        return None
    try:
        count = int(data[pos + 1 : line_end])
    except ValueError:
        return None
    args: list[bytes] = []
    pos = line_end + 2
    size_of_data = len(data)
    for _ in range(count):
        if pos >= size_of_data or data[pos] != 0x24:  # "$": a bulk string
            return None
        line_end = find(b"\r\n", pos)
        if line_end < 0:
            return None
        try:
            size = int(data[pos + 1 : line_end])
        except ValueError:
            return None
        start = line_end + 2
        end = start + size
        if size < 0 or data[end : end + 2] != b"\r\n":
            return None
        args.append(data[start:end])
        pos = end + 2
    return args, pos


class Commands(Struct):
    """The commands of one Redis request, each its arguments (a pipeline sends several)."""

    commands: list[list[bytes]]

    @property
    def name(self) -> str:
        """The first command's name, upper-cased (`GET`)."""
        return self.commands[0][0].decode("latin-1").upper()

    @property
    def key(self) -> bytes | None:
        """The first command's first argument (its key, for most commands)."""
        first = self.commands[0]
        return first[1] if len(first) > 1 else None


def value_length(data: bytes, pos: int = 0) -> int | None:
    """The end offset of the complete RESP value starting at `pos`, or None if incomplete."""
    if pos >= len(data):
        return None
    kind = data[pos : pos + 1]
    line_end = data.find(b"\r\n", pos)
    if line_end < 0:
        return None
    if kind in (b"",) or kind not in _SIMPLE + _BULK + _AGGREGATE:
        # Inline command: one line.
        return line_end + 2
    if kind in _SIMPLE:
        return line_end + 2
    try:
        size = int(data[pos + 1 : line_end])
    except ValueError:
        return None
    if kind in _BULK:
        if size < 0:
            return line_end + 2
        end = line_end + 2 + size + 2
        return end if end <= len(data) else None
    count = size * 2 if kind in b"%|" else size
    cursor = line_end + 2
    for _ in range(max(count, 0)):
        nxt = value_length(data, cursor)
        if nxt is None:
            return None
        cursor = nxt
    return cursor


def complete_values(data: bytes) -> int:
    """How many complete RESP values `data` holds back to back (pipelining), -1 if it ends mid-value."""
    count = 0
    pos = 0
    while pos < len(data):
        end = value_length(data, pos)
        if end is None:
            return -1
        pos = end
        count += 1
    return count
