"""Fresh request ids: random 16-hex-digit strings cut from batched ``os.urandom`` calls, never
repeated within a process and never shared by a forked child with its parent."""

from __future__ import annotations

import os
import re

from service.audit import request_id_from


def test_fresh_ids_are_distinct_hex_across_many_batches() -> None:
    """Thousands of ids (many 256-id batches): all 16 hex digits, none repeated."""
    ids = [request_id_from(b"") for _ in range(5000)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", value) for value in ids)
    assert len(set(ids)) == len(ids)


def test_a_sane_incoming_id_is_kept_and_an_insane_one_replaced() -> None:
    assert request_id_from(b"proxy-req.0001") == "proxy-req.0001"
    for insane in (b"short", b"spaces are not ok", b"x" * 65, "é-accented-id".encode()):
        assert re.fullmatch(r"[0-9a-f]{16}", request_id_from(insane))


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    """The child starts a new batch: the ids it makes are not the parent's next ones."""
    request_id_from(b"")  # the parent has a batch under way
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids, then leave at once
        os.close(read)
        os.write(write, ",".join(request_id_from(b"") for _ in range(8)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split(",")
    os.waitpid(pid, 0)
    parent = [request_id_from(b"") for _ in range(8)]
    assert len(child) == 8
    assert not set(child) & set(parent)
