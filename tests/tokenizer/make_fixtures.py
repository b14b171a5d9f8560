#!/usr/bin/env python3
"""Train the two small tokenizer fixtures and record Hugging Face's ids (issue 10).

Run on the GPU machine, where sentencepiece, tokenizers and transformers are
installed (bench/gpu_tokenizer.sh calls it):

    python3 tests/tokenizer/make_fixtures.py OUTDIR

It trains, on local text (this Python's standard library sources plus the
multilingual lines of textpools.py, all seeded):
  llama2/  a SentencePiece BPE model with LLaMA-2's trainer settings (byte
           fallback, split digits, identity normalization, dummy prefix),
           saved as tokenizer.model, then loaded by transformers'
           AutoTokenizer with LLaMA-2's tokenizer_config.json and saved again,
           which adds the tokenizer.json HF converts it to;
  llama3/  a byte-level BPE with LLaMA-3's pre-tokenizer regex, ignore_merges,
           special tokens after the vocabulary and a BOS template, trained by
           the tokenizers library and saved through PreTrainedTokenizerFast.
and writes OUTDIR/expected.json (split by expected_files.py into
OUTDIR/fixtures/expected/, the files CI compares with): for every string of corpus.jsonl the ids
of AutoTokenizer (the reference), of the raw tokenizers library and of the
slow/SentencePiece paths where they exist, and the calibration ids of
calib_articles.jsonl under the Python tool's text handling (trtllm spec 5.1).
"""
import glob
import json
import os
import random
import shutil
import sys
import sysconfig
import time

import sentencepiece as spm
import tokenizers
import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import expected_files  # noqa: E402
import textpools  # noqa: E402

# LLaMA-3's pre-tokenizer pattern (tiktoken's cl100k pattern as Meta ships it).
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                   "<|reserved_special_token_1|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
LLAMA2_CONFIG = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                 "unk_token": "<unk>", "pad_token": None, "legacy": False, "clean_up_tokenization_spaces": False,
                 "tokenizer_class": "LlamaTokenizer", "model_max_length": 4096, "padding_side": "right",
                 "sp_model_kwargs": {}}


def training_file(path):
    stdlib = sysconfig.get_paths()["stdlib"]
    lines, size = [], 0
    for f in sorted(glob.glob(os.path.join(stdlib, "*.py"))):
        with open(f, encoding="utf-8", errors="replace") as fh:
            for ln in fh:
                ln = ln.rstrip("\n")
                if ln.strip() and len(ln) < 2000:
                    lines.append(ln)
                    size += len(ln)
        if size > 3_000_000:
            break
    lines += textpools.training_text(random.Random(1), 30000)
    random.Random(2).shuffle(lines)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return len(lines)


def train_llama2(train, out, tmp):
    prefix = os.path.join(tmp, "sp")
    spm.SentencePieceTrainer.train(
        input=train, model_prefix=prefix, model_type="bpe", vocab_size=3000, byte_fallback=True,
        split_digits=True, allow_whitespace_only_pieces=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", add_dummy_prefix=True, character_coverage=0.9995,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, max_sentence_length=8192, num_threads=16,
        input_sentence_size=400000, shuffle_input_sentence=True, minloglevel=2)
    only_model = os.path.join(tmp, "llama2_model_only")
    os.makedirs(only_model)
    shutil.copy(prefix + ".model", os.path.join(only_model, "tokenizer.model"))
    with open(os.path.join(only_model, "tokenizer_config.json"), "w") as fh:
        json.dump(LLAMA2_CONFIG, fh, indent=2)
    tok = AutoTokenizer.from_pretrained(only_model)
    tok.save_pretrained(out)
    shutil.copy(prefix + ".model", os.path.join(out, "tokenizer.model"))
    return only_model


def train_llama3(train, out):
    tk = Tokenizer(models.BPE(ignore_merges=True))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=3000, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train([train], trainer)
    tk.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in LLAMA3_SPECIALS])
    bos = tk.token_to_id("<|begin_of_text|>")
    tk.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|begin_of_text|>",
                                   eos_token="<|end_of_text|>", clean_up_tokenization_spaces=True,
                                   model_max_length=131072)
    fast.save_pretrained(out)


def read_jsonl(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(ln) for ln in fh if ln.strip()]


def calib_text(row):
    """The Python tool's per-sample text handling (trtllm spec 5.1)."""
    s = row.get("article", row.get("text")) + " TL;DR: "
    return s.strip().replace(" n't", "n't")


def try_load(path, **kw):
    try:
        return AutoTokenizer.from_pretrained(path, **kw), None
    except Exception as e:  # noqa: BLE001 - recorded, not fatal
        return None, f"{type(e).__name__}: {e}"


def record(name, path, texts, arts, extra):
    res = {"dir": name, "files": sorted(os.listdir(path))}
    fast, err = try_load(path)
    res["auto_class"] = type(fast).__name__
    res["ids"] = [fast(t)["input_ids"] for t in texts]
    raw = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
    res["raw_tokenizers_ids"] = [raw.encode(t).ids for t in texts]
    res["raw_vs_auto_mismatches"] = sum(a != b for a, b in zip(res["ids"], res["raw_tokenizers_ids"]))
    slow, err = try_load(path, use_fast=False)
    res["slow_class"] = type(slow).__name__ if slow else err
    if slow is not None:
        res["slow_ids"] = [slow(t)["input_ids"] for t in texts]
        res["slow_vs_auto_mismatches"] = sum(a != b for a, b in zip(res["ids"], res["slow_ids"]))
    res["calib"] = {}
    for which, tok in (("auto", fast), ("slow", slow)):
        if tok is None:
            continue
        tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        for L in (8, 32, 512):
            res["calib"][f"{which}_{L}"] = [
                tok([calib_text(a)], max_length=L, padding=True, truncation=True)["input_ids"][0] for a in arts]
    res.update(extra)
    return res


def bench(path, texts):
    """Preview of Hugging Face's speed on a fixture (the comparison with trtconv is bench/bench_tokenizer.sh)."""
    tok = AutoTokenizer.from_pretrained(path)
    big = texts * 20
    t0 = time.perf_counter()
    n = sum(len(x) for x in tok(big)["input_ids"])
    t1 = time.perf_counter()
    raw = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
    t2 = time.perf_counter()
    n2 = sum(len(raw.encode(t).ids) for t in big)
    t3 = time.perf_counter()
    return {"tokens": n, "batch_s": t1 - t0, "batch_tok_per_s": n / (t1 - t0),
            "loop_s": t3 - t2, "loop_tok_per_s": n2 / (t3 - t2)}


def main():
    out = sys.argv[1]
    data = os.path.join(HERE, "..", "data", "tokenizer")
    texts = [r["text"] for r in read_jsonl(os.path.join(data, "corpus.jsonl"))]
    arts = read_jsonl(os.path.join(data, "calib_articles.jsonl"))
    tmp = os.path.join(out, "work")
    fixtures = os.path.join(out, "fixtures")
    os.makedirs(tmp, exist_ok=True)
    os.makedirs(fixtures, exist_ok=True)
    train = os.path.join(tmp, "train.txt")
    n_lines = training_file(train)
    t0 = time.time()
    only_model = train_llama2(train, os.path.join(fixtures, "llama2"), tmp)
    t1 = time.time()
    train_llama3(train, os.path.join(fixtures, "llama3"))
    t2 = time.time()
    sp = spm.SentencePieceProcessor(model_file=os.path.join(fixtures, "llama2", "tokenizer.model"))
    exp = {
        "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                     "sentencepiece": spm.__version__, "python": sys.version.split()[0]},
        "training": {"lines": n_lines, "llama2_s": t1 - t0, "llama3_s": t2 - t1},
        "n_texts": len(texts),
    }
    exp["llama2"] = record("llama2", os.path.join(fixtures, "llama2"), texts, arts, {
        "spm_ids": [[1] + sp.encode(t) for t in texts]})
    exp["llama2_model_only"] = record("llama2_model_only", only_model, texts, arts, {}) \
        if os.path.exists(os.path.join(only_model, "tokenizer.json")) else None
    if exp["llama2_model_only"] is None:
        tok, err = try_load(only_model)
        exp["llama2_model_only"] = {"auto_class": type(tok).__name__ if tok else err,
                                    "ids": [tok(t)["input_ids"] for t in texts] if tok else None}
    exp["llama3"] = record("llama3", os.path.join(fixtures, "llama3"), texts, arts, {})
    exp["bench_preview"] = {k: bench(os.path.join(fixtures, k), texts) for k in ("llama2", "llama3")}
    with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as fh:
        json.dump(exp, fh, ensure_ascii=False)
    expected_files.write(exp, os.path.join(fixtures, "expected"))
    for k in ("llama2", "llama3"):
        r = exp[k]
        print(k, r["auto_class"], r["files"], "raw_vs_auto", r["raw_vs_auto_mismatches"],
              "slow", r["slow_class"], r.get("slow_vs_auto_mismatches"))
    print("llama2 spm vs auto", sum(a != b for a, b in zip(exp["llama2"]["ids"], exp["llama2"]["spm_ids"])))
    mo = exp["llama2_model_only"]
    if mo.get("ids"):
        print("llama2 model-only", mo["auto_class"], "vs auto",
              sum(a != b for a, b in zip(exp["llama2"]["ids"], mo["ids"])))
    print(json.dumps(exp["versions"]), json.dumps(exp["training"]), json.dumps(exp["bench_preview"]))


if __name__ == "__main__":
    main()
