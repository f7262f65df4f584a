"""Damage a file in the embedded store on disk, as a faulty disk or a malicious host would."""


def flip_stored_byte(store, cid) -> None:
    """Flip one bit in the middle of ``cid``'s root block, in its pack file."""
    location = store.blocks.locate(cid)
    with open(location.path, "r+b") as pack:
        pack.seek(location.offset + location.length // 2)
        byte = pack.read(1)
        pack.seek(-1, 1)
        pack.write(bytes([byte[0] ^ 0x01]))
