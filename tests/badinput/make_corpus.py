#!/usr/bin/env python3
"""make_corpus.py: writes the bad-input corpus (files/) once; the files are
committed, so tests never need Python. Each file breaks exactly one rule of
one reader; cases.tsv (hand-maintained) names the reader and the exact error
message each must produce. Rerun only to add cases."""
import json, os, struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "files")
os.makedirs(OUT, exist_ok=True)

def w(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

def st_raw(header_bytes, data_len, pad=True):
    h = header_bytes
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"\0" * data_len

def st(header, data_len):
    return st_raw(json.dumps(header, separators=(",", ":")).encode(), data_len)

T = lambda dt, shape, b, e: {"dtype": dt, "shape": shape, "data_offsets": [b, e]}

# ---- safetensors ----
w("st_too_small.safetensors", b"\x08\x00\x00")
w("st_header_too_large.safetensors", struct.pack("<Q", 100000001) + b"{}")
w("st_header_past_end.safetensors", struct.pack("<Q", 64) + b"{}")
w("st_not_utf8.safetensors", st_raw(b'{"\xff\xfe":1}', 0))
w("st_not_json.safetensors", st_raw(b'{"a": ', 0))
w("st_top_level_array.safetensors", st_raw(b'[1,2]', 0))
w("st_unknown_dtype.safetensors", st({"a": T("F17", [2], 0, 4)}, 4))
w("st_negative_dim.safetensors", st_raw(b'{"a":{"dtype":"F16","shape":[-2],"data_offsets":[0,4]}}', 4))
w("st_fractional_dim.safetensors", st_raw(b'{"a":{"dtype":"F16","shape":[1.5],"data_offsets":[0,4]}}', 4))
w("st_reversed_offsets.safetensors", st({"a": T("F16", [2], 4, 0)}, 4))
w("st_gap.safetensors", st({"a": T("F16", [2], 0, 4), "b": T("F16", [2], 8, 12)}, 12))
w("st_overlap.safetensors", st({"a": T("F16", [4], 0, 8), "b": T("F16", [2], 4, 8)}, 8))
w("st_offsets_three.safetensors", st_raw(b'{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4,8]}}', 8))
w("st_size_mismatch.safetensors", st({"a": T("F16", [3], 0, 4)}, 4))
w("st_trailing_data.safetensors", st({"a": T("F16", [2], 0, 4)}, 12))
w("st_short_data.safetensors", st({"a": T("F32", [4], 0, 16)}, 10))
w("st_duplicate_key.safetensors", st_raw(b'{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},'
                                          b'"a":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}}', 8))
w("st_metadata_not_string.safetensors", st_raw(b'{"__metadata__":{"format":1},'
                                                b'"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}', 4))
w("st_number_above_2p53.safetensors", st_raw(b'{"a":{"dtype":"U8","shape":[9007199254740993],'
                                              b'"data_offsets":[0,9007199254740993]}}', 0))
w("st_shape_overflow.safetensors", st_raw(b'{"a":{"dtype":"F64","shape":[4294967296,4294967296,16],'
                                           b'"data_offsets":[0,0]}}', 0))
w("st_missing_offsets.safetensors", st_raw(b'{"a":{"dtype":"F16","shape":[2]}}', 4))
w("st_garbage_after_json.safetensors", st_raw(b'{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}} x', 4))
w("st_tensor_not_object.safetensors", st_raw(b'{"a":[1,2]}', 0))

# ---- config.json ----
base = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
        "vocab_size": 100, "torch_dtype": "float16"}
def cfg(name, **kw):
    c = dict(base)
    for k, v in kw.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    w(name, json.dumps(c))
w("config_not_json.json", '{"hidden_size": 64,')
w("config_array.json", "[]")
cfg("config_no_hidden_size.json", hidden_size=None)
cfg("config_prequantized_gptq.json", quantization_config={"quant_method": "gptq", "bits": 4})
cfg("config_prequantized_fbgemm_ub.json",
    quantization_config={"quant_method": "fbgemm_fp8", "activation_scale_ub": -1.0})
cfg("config_negative_heads.json", num_attention_heads=-4)
cfg("config_string_layers.json", num_hidden_layers="2")
cfg("config_architecture.json", architectures=["GPT2LMHeadModel"])
cfg("config_dtype.json", torch_dtype="float8")
cfg("config_rope_scaling_type.json", rope_scaling=[1, 2])
cfg("config_heads_not_dividing.json", hidden_size=66)
w("config_duplicate_key.json", '{"hidden_size": 64, "hidden_size": 128}')

# ---- model.safetensors.index.json ----
w("index_no_weight_map.json", json.dumps({"metadata": {}}))
w("index_weight_map_array.json", json.dumps({"weight_map": ["a"]}))
w("index_traversal.json", json.dumps({"weight_map": {"a": "../../etc/passwd.safetensors"}}))
w("index_not_string.json", json.dumps({"weight_map": {"a": 3}}))
w("index_empty.json", json.dumps({"weight_map": {}}))
w("index_absolute.json", json.dumps({"weight_map": {"a": "/tmp/x.safetensors"}}))
# NUL inside JSON strings and keys (cJSON would cut the C string there)
w("index_nul_shard.json", '{"weight_map": {"a": "model\\u0000x.safetensors"}}')
w("config_nul_key.json", '{"architectures": ["LlamaForCausalLM"], "num_hidden_layers\\u0000evil": 9}')
w("calib_nul.jsonl", '{"input_ids": [1, 2], "note\\u0000": 1}\n')
w("st_nul_name.safetensors", st_raw(b'{"a\\u0000b":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}', 4))

# ---- calibration JSON Lines ----
w("calib_not_json.jsonl", '{"input_ids": [1, 2]}\n{"input_ids": [3\n')
w("calib_no_ids.jsonl", '{"text": "hello"}\n')
w("calib_id_out_of_vocab.jsonl", '{"input_ids": [1, 1000]}\n')
w("calib_negative_id.jsonl", '{"input_ids": [-1]}\n')
w("calib_fractional_id.jsonl", '{"input_ids": [1.5]}\n')
w("calib_empty.jsonl", "\n\n")
w("calib_ids_not_array.jsonl", '{"input_ids": "1 2 3"}\n')

# ---- torch.save archives (pytorch_model.bin / consolidated.NN.pth) ----
# Built with Python's own zipfile (an implementation independent of
# trtconv's), pickles written opcode by opcode so nothing is ever pickled
# from a live object. See src/formats/torchfile.c for the rules they break.
import io, zipfile

def torch_zip(name, pkl, storages=(), compress=zipfile.ZIP_STORED, patch=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", b"little")
        for i, s in enumerate(storages):
            z.writestr("archive/data/%d" % i, s)
        z.writestr("archive/version", b"3\n")
    data = bytearray(buf.getvalue())
    if patch:
        patch(data)
    w(name, bytes(data))

def binu(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b

def tensor_dict(numel, off, shape, stride):
    """{"w": tensor} in torch.save's protocol-2 opcode sequence."""
    t = lambda v: b"".join(b"K" + bytes([x]) for x in v) + {1: b"\x85", 2: b"\x86"}[len(v)]
    return (b"\x80\x02}q\x00" + binu("w") + b"q\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02((" +
            binu("storage") + b"q\x03ctorch\nFloatStorage\nq\x04" + binu("0") + b"q\x05" +
            binu("cpu") + b"q\x06K" + bytes([numel]) + b"tq\x07QK" + bytes([off]) + t(shape) +
            b"q\x08" + t(stride) + b"q\x09\x89ccollections\nOrderedDict\nq\x0a)Rq\x0btq\x0cRq\x0ds.")

torch_zip("torch_os_system.bin", b"\x80\x02cos\nsystem\nq\x00" + binu("touch /tmp/trtconv_pwned") +
          b"q\x01\x85q\x02Rq\x03.")
torch_zip("torch_reduce_storage_class.bin", b"\x80\x02ctorch\nFloatStorage\n)R.")
torch_zip("torch_deep_nesting.bin", b"\x80\x02N" + b"\x85" * 40 + b".")
torch_zip("torch_huge_length.bin", b"\x80\x02X\xf0\xff\xff\xffabc.")
torch_zip("torch_protocol4.bin", b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00}.")
torch_zip("torch_inst_opcode.bin", b"\x80\x02(ios\nsystem\n.")
torch_zip("torch_transposed.bin", tensor_dict(6, 0, (3, 2), (1, 3)), [b"\0" * 24])
torch_zip("torch_outside_storage.bin", tensor_dict(6, 2, (2, 3), (3, 1)), [b"\0" * 24])
torch_zip("torch_storage_size.bin", tensor_dict(6, 0, (2, 3), (3, 1)), [b"\0" * 20])
torch_zip("torch_deflate.bin", tensor_dict(6, 0, (2, 3), (3, 1)), [b"\0" * 24],
          compress=zipfile.ZIP_DEFLATED)

def grow_first_entry(d):
    # Central record of archive/data.pkl: sizes +64, running into the next entry.
    c = d.index(b"PK\x01\x02")
    for off in (20, 24):
        v = struct.unpack_from("<I", d, c + off)[0]
        struct.pack_into("<I", d, c + off, v + 64)
torch_zip("torch_overlap.bin", tensor_dict(6, 0, (2, 3), (3, 1)), [b"\0" * 24],
          patch=grow_first_entry)
w("torch_not_zip.bin", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.")

# ---- Meta params.json ----
meta = {"dim": 64, "multiple_of": 32, "n_heads": 4, "n_layers": 2, "norm_eps": 1e-5, "vocab_size": -1}
def params(name, **kw):
    c = dict(meta)
    for k, v in kw.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    w(name, json.dumps(c))
params("params_no_norm_eps.json", norm_eps=None)
params("params_kv_not_dividing.json", n_kv_heads=3)
params("params_dim_not_dividing.json", dim=66)
params("params_negative_multiplier.json", ffn_dim_multiplier=-1.3)
params("params_scaled_rope_string.json", use_scaled_rope="yes")
