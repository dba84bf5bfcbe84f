"""Which parameters train (``train_layers``) and where the frozen trunk ends."""

from __future__ import annotations

from typing import Any


def top_k(spec: str) -> int | None:
    """``"top-4"`` -> 4; ``"full"``/``"lora"`` -> None."""
    return int(spec[4:]) if spec.startswith("top-") else None


def decoder_layers(model: Any) -> Any:
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__} has no model.layers; use train_layers='full' or 'lora'.")
    return layers


def capture_layer(model: Any, spec: str) -> int | None:
    """Index of the first trained decoder layer for ``top-K`` (its input activations are reused), else None."""
    k = top_k(spec)
    if k is None:
        return None
    n = len(decoder_layers(model))
    if k > n:
        raise ValueError(f"train_layers={spec!r} but the model has only {n} decoder layers; use top-{n} or 'full'.")
    return n - k


def select_trainable(model: Any, spec: str) -> int:
    """Set ``requires_grad`` for ``spec`` ('full', 'top-K'; 'lora' leaves it to peft) and return the count of
    trainable parameters. ``top-K`` trains the K top decoder layers and the final norm; embeddings (tied to the
    output head in SmolLM2) stay frozen."""
    if spec == "lora":
        for p in model.parameters():
            p.requires_grad_(False)
        return 0
    if spec == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return sum(p.numel() for p in model.parameters())
    k = top_k(spec)
    layers = decoder_layers(model)
    first = capture_layer(model, spec)
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in list(layers)[first:]:
        for p in layer.parameters():
            p.requires_grad_(True)
    norm = getattr(model.model, "norm", None)
    if norm is not None:
        for p in norm.parameters():
            p.requires_grad_(True)
    del k
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
