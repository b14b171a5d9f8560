#!/usr/bin/env python3
"""Hostile tokenizer files for test_tokenizer_bombs.sh (and the fuzz seeds).

    python3 tests/tokenizer/make_bombs.py OUTDIR

Writes, each into its own folder of OUTDIR:
  spm_long/      tokenizer.model with four 1 MiB pieces (merge generation
                 used to hash every prefix of every piece: quadratic)
  spm_work/      tokenizer.model with 300 pieces of 1000 bytes (each under
                 the per-piece limit, together over the work limit)
  spm_ok/        tokenizer.model with 32000 short pieces (must load fast)
  added/         tokenizer.json with 4000 added tokens "<tok0000>" ...
                 sharing the prefix "<tok", and added.jsonl: 400 KB of
                 "<tok" repeated (no token completes; the old matcher
                 compared every token at every position)
  bytelevel16/   tokenizer.json whose Sequence holds 16 ByteLevel steps
                 with Digits between them (each ByteLevel re-maps the bytes
                 of the previous one: the text doubles every step)
"""
import json
import os
import struct
import sys


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field_bytes(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def spm_model(pieces):
    out = bytearray()
    for i, p in enumerate(pieces):
        sp = field_bytes(1, p) + varint(2 << 3 | 5) + struct.pack("<f", -float(i)) + varint(3 << 3) + varint(1)
        out += field_bytes(1, sp)
    trainer = varint(3 << 3) + varint(2)  # model_type = BPE
    out += field_bytes(2, trainer)
    return bytes(out)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def main():
    out = sys.argv[1]
    base = [bytes([c]) for c in b"abcdefghijklmnopqrstuvwxyz "]
    write(f"{out}/spm_long/tokenizer.model",
          spm_model(base + [bytes([97 + k]) * (1 << 20) for k in range(4)]))
    write(f"{out}/spm_work/tokenizer.model",
          spm_model(base + [(b"%04d" % k) + b"x" * 996 for k in range(300)]))
    pieces = [b"<unk>", b"<s>", b"</s>"] + base
    k = 0
    while len(pieces) < 32000:
        pieces.append(("p%05d" % k).encode())
        k += 1
    write(f"{out}/spm_ok/tokenizer.model", spm_model(pieces))

    vocab = {chr(c): i for i, c in enumerate(range(32, 127))}
    added = [{"id": 200 + i, "content": "<tok%04d>" % i, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True} for i in range(4000)]
    tok = {"version": "1.0", "added_tokens": added, "normalizer": None, "pre_tokenizer": None,
           "post_processor": None, "decoder": None,
           "model": {"type": "BPE", "vocab": vocab, "merges": [], "byte_fallback": False}}
    write(f"{out}/added/tokenizer.json", json.dumps(tok))
    write(f"{out}/added.jsonl", json.dumps({"text": "<tok" * 100000}) + "\n")

    steps = []
    for _ in range(16):
        steps.append({"type": "ByteLevel", "add_prefix_space": False, "use_regex": False})
        steps.append({"type": "Digits", "individual_digits": True})
    bl = {"version": "1.0", "added_tokens": [], "normalizer": None,
          "pre_tokenizer": {"type": "Sequence", "pretokenizers": steps},
          "post_processor": None, "decoder": None,
          "model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": False}}
    write(f"{out}/bytelevel16/tokenizer.json", json.dumps(bl))
    write(f"{out}/text.jsonl", json.dumps({"text": "héllo wörld 12 ünïcödé ✓ " * 100}) + "\n")


if __name__ == "__main__":
    main()
