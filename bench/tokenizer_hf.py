#!/usr/bin/env python3
"""Hugging Face side of bench/bench_tokenizer.sh (issue 10).

    python3 bench/tokenizer_hf.py prepare W
        trains two LLaMA-sized tokenizers in W (llama2/: SentencePiece BPE,
        32000 pieces, LLaMA-2 trainer settings, saved through transformers
        with tokenizer.json; llama3/: byte-level BPE with LLaMA-3's regex,
        up to 128000 tokens + 7 specials) on this Python's standard library
        and the multilingual lines of tests/tokenizer/textpools.py, and
        writes W/texts.jsonl: ~4 KB "articles" cut from the documentation
        files (*.md, *.rst, *.txt) of site-packages, a text neither
        tokenizer was trained on, plus mixed-script lines.
    python3 bench/tokenizer_hf.py run DIR TEXTS OUT_IDS
        AutoTokenizer(DIR) on every line of TEXTS: a single-thread loop of
        the raw tokenizers.Tokenizer.encode, and transformers' batch call
        (Rust threads over all cores), best of 3 each; writes the ids as
        trtconv-tokenize does and prints one JSON line of figures.
"""
import glob
import json
import os
import random
import sys
import sysconfig
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "tokenizer"))


def prepare(w):
    import make_fixtures as mf  # the fixture trainer, with larger vocabularies
    import sentencepiece as spm
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    import textpools
    os.makedirs(w, exist_ok=True)
    train = os.path.join(w, "train.txt")
    n = mf.training_file(train)
    t0 = time.time()
    prefix = os.path.join(w, "sp32k")
    spm.SentencePieceTrainer.train(
        input=train, model_prefix=prefix, model_type="bpe", vocab_size=32000, byte_fallback=True,
        split_digits=True, allow_whitespace_only_pieces=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", add_dummy_prefix=True, character_coverage=0.9995,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, max_sentence_length=8192, num_threads=os.cpu_count(),
        input_sentence_size=200000, shuffle_input_sentence=True, minloglevel=2)
    only = os.path.join(w, "llama2_model_only")
    os.makedirs(only, exist_ok=True)
    import shutil
    shutil.copy(prefix + ".model", os.path.join(only, "tokenizer.model"))
    with open(os.path.join(only, "tokenizer_config.json"), "w") as fh:
        json.dump(mf.LLAMA2_CONFIG, fh)
    AutoTokenizer.from_pretrained(only).save_pretrained(os.path.join(w, "llama2"))
    shutil.copy(prefix + ".model", os.path.join(w, "llama2", "tokenizer.model"))
    t1 = time.time()
    tk = Tokenizer(models.BPE(ignore_merges=True))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(mf.LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    tk.train([train], trainers.BpeTrainer(vocab_size=128000, min_frequency=2, show_progress=False,
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tk.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in mf.LLAMA3_SPECIALS])
    bos = tk.token_to_id("<|begin_of_text|>")
    tk.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)])])
    PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|begin_of_text|>",
                            eos_token="<|end_of_text|>").save_pretrained(os.path.join(w, "llama3"))
    t2 = time.time()
    # Benchmark text: documentation files of site-packages, cut into articles.
    site = sysconfig.get_paths()["purelib"]
    files = sorted(glob.glob(os.path.join(site, "**", "*.md"), recursive=True) +
                   glob.glob(os.path.join(site, "**", "*.rst"), recursive=True) +
                   glob.glob(os.path.join(site, "**", "*.txt"), recursive=True))
    rnd = random.Random(3)
    arts, cur, total = [], [], 0
    for f in files:
        try:
            with open(f, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        for ln in lines:
            cur.append(ln)
            if sum(map(len, cur)) > 4000:
                if rnd.random() < 0.2:
                    cur.append(" ".join(textpools.training_text(rnd, 3)))
                arts.append("\n".join(cur))
                total += len(arts[-1])
                cur = []
        if len(arts) >= 2500:
            break
    with open(os.path.join(w, "texts.jsonl"), "w", encoding="utf-8") as fh:
        for a in arts:
            fh.write(json.dumps({"text": a}, ensure_ascii=False) + "\n")
    info = {"train_lines": n, "sp_train_s": t1 - t0, "bpe_train_s": t2 - t1, "articles": len(arts),
            "chars": total, "doc_files": len(files),
            "llama2_vocab": AutoTokenizer.from_pretrained(os.path.join(w, "llama2")).vocab_size,
            "llama3_vocab": tk.get_vocab_size()}
    print(json.dumps(info))


def run(d, texts_path, out_ids):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer
    with open(texts_path, encoding="utf-8") as fh:
        texts = [json.loads(ln)["text"] for ln in fh if ln.strip()]
    tok = AutoTokenizer.from_pretrained(d)
    raw = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    ids = tok(texts)["input_ids"]
    n_tok = sum(map(len, ids))
    single, batch = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        for t in texts:
            raw.encode(t)
        single.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        tok(texts)
        batch.append(time.perf_counter() - t0)
    with open(out_ids, "w") as fh:
        for x in ids:
            fh.write(json.dumps({"ids": x}) + "\n")
    raw_same = sum(raw.encode(t).ids == x for t, x in zip(texts, ids))
    print(json.dumps({"dir": d, "class": type(tok).__name__, "texts": len(texts),
                      "bytes": sum(len(t.encode()) for t in texts), "tokens": n_tok,
                      "raw_equals_auto": raw_same, "hf_single_thread_s": min(single),
                      "hf_single_thread_tok_per_s": n_tok / min(single), "hf_batch_s": min(batch),
                      "hf_batch_tok_per_s": n_tok / min(batch), "threads": os.cpu_count()}))


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2])
    else:
        run(sys.argv[2], sys.argv[3], sys.argv[4])
