"""A tiny random-weight llama model in GGUF, made locally, so tests run a real Ollama without downloads.

Its output is noise, but Ollama constrains it with the JSON-schema grammar we
send as ``format``, so replies are schema-valid and end at EOS: exactly what
the explanation stage's plumbing needs to be tested end to end.

One deliberate bias keeps replies short: every embedding shares a common
direction and the output rows of quote-bearing tokens point along it, so
wherever the grammar lets a string end, the model ends it. Pure noise would
fill every string to its maxLength one byte token at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

EMBED = 64
LAYERS = 2
HEADS = 4
FEED_FORWARD = 128
CONTEXT = 8192
SPECIALS = ["<unk>", "<s>", "</s>"]
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_BYTE = 1, 2, 3, 6
# A few whole-word tokens besides the 256 byte tokens keep prompts short and tokenization realistic.
WORDS = ['{"', '"}', '":', '",', "▁the", "▁pod", "▁is", "▁in", "▁of", "▁and", "▁to", "▁a", "▁Deployment", "▁critical"]


def _vocabulary() -> tuple[list[str], list[float], list[int]]:
    tokens = list(SPECIALS)
    types = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [TOKEN_BYTE] * 256
    tokens += WORDS
    types += [TOKEN_NORMAL] * len(WORDS)
    scores = [0.0] * len(tokens)
    for i, _ in enumerate(WORDS):
        scores[len(SPECIALS) + 256 + i] = -float(i + 1)
    return tokens, scores, types


def write_tiny_llama(path: Path, seed: int = 7) -> Path:
    """Write the model to ``path`` (about 0.3 MB) and return it."""
    import gguf  # only tests and the demo need it

    tokens, scores, types = _vocabulary()
    vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("infragenius-tiny")
    writer.add_file_type(0)  # all F32
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(EMBED)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(EMBED // HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)

    # numpy shapes are ggml's ne reversed: token_embd is ne=(EMBED, vocab).
    common = np.ones(EMBED, dtype=np.float32)
    writer.add_tensor("token_embd.weight", (weights(vocab, EMBED) + common).astype(np.float32))
    for block in range(LAYERS):
        prefix = f"blk.{block}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(EMBED, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{prefix}.{name}.weight", weights(EMBED, EMBED))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(EMBED, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", weights(FEED_FORWARD, EMBED))
        writer.add_tensor(f"{prefix}.ffn_up.weight", weights(FEED_FORWARD, EMBED))
        writer.add_tensor(f"{prefix}.ffn_down.weight", weights(EMBED, FEED_FORWARD))
    writer.add_tensor("output_norm.weight", np.ones(EMBED, dtype=np.float32))
    output = weights(vocab, EMBED)
    for index, token in enumerate(tokens):
        if token == "<0x22>" or token.startswith('"') or token.endswith('"'):
            output[index] = common * 0.5
        elif token in ("<0x09>", "<0x0A>", "<0x0D>", "<0x20>"):
            output[index] = common * -0.5  # optional whitespace between JSON tokens: skip it
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


MODELFILE = """FROM {gguf}
TEMPLATE \"\"\"{{{{ range .Messages }}}}[{{{{ .Role }}}}] {{{{ .Content }}}}
{{{{ end }}}}[assistant] \"\"\"
PARAMETER temperature 0
"""


def write_modelfile(directory: Path) -> Path:
    """A GGUF file and an Ollama Modelfile that imports it; returns the Modelfile."""
    directory.mkdir(parents=True, exist_ok=True)
    model = write_tiny_llama(directory / "tiny.gguf")
    modelfile = directory / "Modelfile"
    modelfile.write_text(MODELFILE.format(gguf=model))
    return modelfile
