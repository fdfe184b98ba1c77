"""`atommem convert-model`: resolve a model name to a local HF folder (building aliases such as
smollm2-135m once) and print it, so a workflow prepares the model before parallel jobs start."""

from __future__ import annotations

from dataclasses import dataclass

from atommem.config import option
from atommem.llm.models import check_model_name, resolve_model


@dataclass
class ConvertModelConfig:
    name: str = option("smollm2-135m", "model alias, hub id or folder to resolve")
    cache_dir: str | None = option(None, "default: $ATOMMEM_CACHE or ~/.cache/atommem/models")


CONFIG_CLASS = ConvertModelConfig


def main(cfg: ConvertModelConfig) -> None:
    check_model_name(cfg.name, "name", needs=("weights", "tokenizer"))
    print(resolve_model(cfg.name, cache_dir=cfg.cache_dir))
