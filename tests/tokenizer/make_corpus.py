#!/usr/bin/env python3
"""Write the tokenizer test corpus (issue 10), deterministically.

    python3 tests/tokenizer/make_corpus.py tests/data/tokenizer

writes
  corpus.jsonl          one {"text": ...} per line: the strings whose ids
                        trtconv must reproduce exactly (>= 500 of them)
  calib_articles.jsonl  calibration-style lines ({"article": ...} and
                        {"text": ...}) for the Python tool's text handling

The expected ids are made by make_fixtures.py with Hugging Face on the GPU
machine; this script needs nothing but Python's standard library.
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import textpools as P  # noqa: E402


def corpus():
    rnd = random.Random(20261204)
    out = []
    singles = (P.ENGLISH + P.CODE + [s for v in P.SCRIPTS.values() for s in v] + P.EMOJI + P.COMBINING
               + P.DIGITS + P.WHITESPACE + P.SPECIAL_TEXT)
    out += singles
    out += [" " + s for s in P.ENGLISH[:8]] + ["  " + s for s in P.SCRIPTS["chinese"]]
    out += [s + " " for s in P.ENGLISH[:5]] + [s + "\n" for s in P.CODE[:4]]
    out += [
        "", "a", "A", "▁", "▁▁hello", "hello▁world", "Ġ", "ĠĠ", "\ufffd", "\u200b", "\u200d", "\ufeffBOM",
        "\x01\x02\x7f", "\ue000", "\uffff", "𠀀𠀁", "'s 'S 'll 'LL 'VE 're 'd 'M 't ’s ’ll",
        "don't DON'T Don't", "it's", "I'm", "we're'nt", "a'b'c", "''''", "...", "---", "!!!???",
        "___", "$$$", "((()))", "a\tb\tc", "line1\nline2\r\nline3\rline4",
        "Hello <s> world", "<s>Hello", "Hello</s>", "a</s>b", " <s> ", "<s><s></s></s>", "<unk>x<unk>",
        "<s> <s>  <s>", "x <|eot_id|> y", "<|begin_of_text|>Hello", "Hello<|end_of_text|>",
        "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>", " <|begin_of_text|> ",
        "<|begin_of_text|><|begin_of_text|>", "<|begin_of_text", "<|reserved_special_token_0|>x",
        "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHi [/INST]", "<s>[INST] hi [/INST] hello </s>",
        "I have 12345 apples and 678 pears.", "pi=3.14159265358979", "year2026", "A1B2C3", "1 2 3 4 5",
        "100%", "$1,234.56", "0.000001", "123456789012345678901234567890",
    ]
    for ws in P.WHITESPACE:
        out.append("a" + ws + "b")
        out.append(ws + "word" + ws)
    for ws in [" " * n for n in (2, 3, 4, 7, 16, 33)] + ["\n" * n for n in (2, 5)] + ["\t" * 4, " \t" * 5]:
        out.append("x" + ws + "y" + ws)
    for d in P.DIGITS:
        out.append("The value is " + d + ".")
    for e in P.EMOJI:
        out.append("I love it " + e + " so much")
    for c in P.COMBINING:
        out.append("word" + c + "word " + c)
    pools = [P.ENGLISH, P.CODE, [s for v in P.SCRIPTS.values() for s in v], P.EMOJI, P.COMBINING, P.DIGITS,
             P.WHITESPACE, P.SPECIAL_TEXT]
    seps = ["", " ", "  ", "\n", "\t", " \n", "   "]
    for _ in range(260):
        k = rnd.randint(1, 6)
        parts = []
        for _ in range(k):
            parts.append(rnd.choice(rnd.choice(pools)))
            parts.append(rnd.choice(seps))
        out.append("".join(parts))
    for n in (2000, 3000, 5000):
        parts = []
        while sum(map(len, parts)) < n:
            parts.append(rnd.choice(rnd.choice(pools)))
        out.append(" ".join(parts))
    return out


def articles():
    rnd = random.Random(7)
    arts = []
    for i in range(12):
        k = rnd.randint(2, 40)
        body = " ".join(rnd.choice(P.ENGLISH) for _ in range(k))
        if i % 3 == 0:
            body = "  \n" + body + " It isn't over , they don't say .  \u00a0\n"
        if i % 4 == 1:
            body += " " + rnd.choice(P.SCRIPTS["chinese"]) + " " + rnd.choice(P.EMOJI)
        if i == 5:
            body = "CNN -- The <s> token and </s> appear in text; they can't be special."
        if i == 7:
            body = "Short one."
        key = "article" if i % 2 == 0 else "text"
        arts.append({key: body})
    return arts


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(d, exist_ok=True)
    texts = corpus()
    assert len(texts) >= 500, len(texts)
    with open(os.path.join(d, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    with open(os.path.join(d, "calib_articles.jsonl"), "w", encoding="utf-8") as f:
        for a in articles():
            f.write(json.dumps(a, ensure_ascii=False) + "\n")
    print(f"{len(texts)} strings")


if __name__ == "__main__":
    main()
