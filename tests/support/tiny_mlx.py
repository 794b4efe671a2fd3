"""A tiny random llama model folder that mlx-lm loads: config.json, model.safetensors (random
weights written with ``mx.save_safetensors``) and a byte-level BPE tokenizer trained on a few
sentences, with a chat template. Gibberish output, but the real MLX code path end to end."""

from __future__ import annotations

import json
from pathlib import Path

SENTENCES = [
    "The capital of France is Paris.",
    "Hello, how are you today?",
    "A small model answers small questions.",
    "The quick brown fox jumps over the lazy dog.",
    "Local models run on the machine you own.",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _tokenizer(folder: Path, vocab_size: int) -> int:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(SENTENCES * 4, trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "unk_token": None,
        "pad_token": "<|endoftext|>",
        "chat_template": CHAT_TEMPLATE,
        "model_max_length": 512,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return int(tokenizer.get_vocab_size())


def make_tiny_mlx_model(folder: Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, context: int = 512) -> Path:
    """Write the model folder (created if needed) and return it."""
    import mlx.core as mx

    folder.mkdir(parents=True, exist_ok=True)
    vocab = _tokenizer(folder, 300)
    eos = SPECIALS.index("<|im_end|>")
    inter, heads = hidden * 2, 4
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "vocab_size": vocab,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": context,
        "tie_word_embeddings": False,
        "eos_token_id": eos,
    }
    (folder / "config.json").write_text(json.dumps(config))
    mx.random.seed(seed)

    def w(*shape: int) -> mx.array:
        return mx.random.normal(shape) * 0.02

    weights = {"model.embed_tokens.weight": w(vocab, hidden), "model.norm.weight": mx.ones((hidden,))}
    weights["lm_head.weight"] = w(vocab, hidden)
    for i in range(layers):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            weights[p + f"self_attn.{name}.weight"] = w(hidden, hidden)
        weights[p + "mlp.gate_proj.weight"] = w(inter, hidden)
        weights[p + "mlp.up_proj.weight"] = w(inter, hidden)
        weights[p + "mlp.down_proj.weight"] = w(hidden, inter)
        weights[p + "input_layernorm.weight"] = mx.ones((hidden,))
        weights[p + "post_attention_layernorm.weight"] = mx.ones((hidden,))
    mx.save_safetensors(str(folder / "model.safetensors"), weights)
    return folder
