#!/usr/bin/env python3
"""Split make_fixtures.py's expected.json into the files CI compares with.

    python3 tests/tokenizer/expected_files.py expected.json tests/data/tokenizer/expected

writes, one {"ids": [...]} line per input line in the format of
trtconv-tokenize's output (so a test is a byte comparison):
  llama2.jsonl, llama3.jsonl           AutoTokenizer ids of corpus.jsonl
  calib_<fixture>_<L>.jsonl            ids of calib_articles.jsonl after the
                                       Python tool's text handling, truncated
                                       to L (auto == slow tokenizer here)
  provenance.json                      versions, training figures, and how
                                       often the other paths disagree
make_fixtures.py calls write() itself; this entry point re-splits a saved
expected.json.
"""
import json
import os
import sys


def lines(path, seqs):
    with open(path, "w", encoding="utf-8") as fh:
        for ids in seqs:
            fh.write(json.dumps({"ids": ids}) + "\n")


def write(exp, out):
    os.makedirs(out, exist_ok=True)
    prov = {"versions": exp["versions"], "training": exp["training"], "n_texts": exp["n_texts"]}
    for fx in ("llama2", "llama3"):
        r = exp[fx]
        lines(os.path.join(out, f"{fx}.jsonl"), r["ids"])
        for L in (8, 32, 512):
            auto, slow = r["calib"][f"auto_{L}"], r["calib"].get(f"slow_{L}")
            assert slow is None or slow == auto, (fx, L)
            lines(os.path.join(out, f"calib_{fx}_{L}.jsonl"), auto)
        prov[fx] = {"auto_class": r["auto_class"], "slow_class": r["slow_class"], "files": r["files"],
                    "raw_tokenizers_vs_auto_mismatches": r["raw_vs_auto_mismatches"],
                    "slow_vs_auto_mismatches": r.get("slow_vs_auto_mismatches")}
    sp = exp["llama2"]["spm_ids"]
    prov["llama2"]["sentencepiece_library_vs_auto_mismatches"] = sum(a != b for a, b in zip(sp, exp["llama2"]["ids"]))
    mo = exp.get("llama2_model_only") or {}
    if mo.get("ids"):
        prov["llama2"]["model_only_dir_vs_auto_mismatches"] = sum(
            a != b for a, b in zip(mo["ids"], exp["llama2"]["ids"]))
    prov["bench_preview"] = exp.get("bench_preview")
    with open(os.path.join(out, "provenance.json"), "w") as fh:
        json.dump(prov, fh, indent=2)
        fh.write("\n")


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        write(json.load(fh), sys.argv[2])
