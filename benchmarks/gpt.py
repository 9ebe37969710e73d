"""A nanoGPT-style language model for the benchmark suite (benchmarks/suite.py, the `gpt`
workloads): token and learned position embeddings, pre-norm causal Transformer blocks
(multi-head attention, a GELU MLP four times as wide), a final layer norm and an output layer
tied to the token embedding; softmax cross-entropy against the next tokens, mean over every
position. graphc builds it with `gc.nn` as a user would (`graph`); `loss` writes the same
arithmetic over any framework's arrays (`Ops` of the suite), param for param, so the suite can
check every implementation's loss and gradients against graphc's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

import graphc as gc

VOCAB = 65  # nanoGPT's character-level Shakespeare


@dataclass(frozen=True)
class Config:
    layers: int
    d: int
    heads: int
    t: int  # the sequence length (the position table's rows; the causal mask)
    batch: int

    @property
    def title(self) -> str:
        return (
            f"nanoGPT-style GPT, {self.layers} layers, d {self.d}, {self.heads} heads, "
            f"T {self.t}, vocabulary {VOCAB}, batch {self.batch}, float32, weight tying; "
            "gradients w.r.t. every param"
        )


CONFIGS = {
    "gpt2": Config(layers=2, d=64, heads=4, t=32, batch=16),
    "gpt4": Config(layers=4, d=64, heads=4, t=32, batch=16),
    "gpt128": Config(layers=4, d=128, heads=4, t=128, batch=16),
}


def graph(cfg: Config) -> gc.Graph:
    """The model as a graphc user writes it."""
    g = gc.Graph(f"suite_gpt_{cfg.layers}x{cfg.d}x{cfg.t}")
    tokens = g.input("tokens", shape=("N", cfg.t), dtype="int64")
    targets = g.input("targets", shape=("N", cfg.t), dtype="int64")
    emb = gc.nn.embedding(tokens, VOCAB, cfg.d, "wte", dtype="float32")
    h = gc.nn.position_embedding(emb, "wpe")
    for k in range(cfg.layers):
        h = gc.nn.transformer_encoder_block(
            h, cfg.heads, 4 * cfg.d, f"h{k}", causal=True, activation="gelu"
        )
    logits = gc.nn.unembed(gc.nn.layer_norm(h, "ln_f"), emb)
    g.output("loss", gc.softmax_cross_entropy(logits, targets))
    return g


def loss(o: Any, v: dict[str, Any], cfg: Config) -> Any:
    """The same model over arrays `v` (params by graphc's names) with the ops `o`."""
    dh = cfg.d // cfg.heads

    def dense(x: Any, name: str) -> Any:
        return x @ v[f"{name}_w"] + v[f"{name}_b"]

    def norm(x: Any, name: str) -> Any:
        return o.layer_norm(x) * v[f"{name}_g"] + v[f"{name}_b"]

    def heads(x: Any) -> Any:  # [N, T, D] -> [N, H, T, Dh]
        return o.swap(x.reshape(-1, cfg.t, cfg.heads, dh), 1, 2)

    h = o.take(v["wte_w"], v["tokens"])
    h = h + v["wpe_w"]
    mask = gc.nn.causal_mask(cfg.t, cfg.t).astype(np.float32)
    for k in range(cfg.layers):
        p = f"h{k}"
        x = norm(h, f"{p}_ln1")
        q, kk, vv = (heads(dense(x, f"{p}_attn_{s}")) for s in "qkv")
        scores = (q @ o.swap(kk, -1, -2)) * (1.0 / math.sqrt(dh)) + o.const(mask, q)
        att = o.swap(o.softmax(scores) @ vv, 1, 2).reshape(-1, cfg.t, cfg.d)
        h = h + dense(att, f"{p}_attn_o")
        x = norm(h, f"{p}_ln2")
        h = h + dense(o.gelu(dense(x, f"{p}_ff1")), f"{p}_ff2")
    logits = norm(h, "ln_f") @ o.swap(v["wte_w"], 0, 1)
    return o.xent_int(logits, v["targets"])


def arrays(cfg: Config, n: int) -> dict[str, np.ndarray]:
    """Random tokens and next tokens; the params as gc.nn initialises them, the embeddings
    scaled to GPT-2's N(0, 0.02)."""
    rng = np.random.default_rng(0)
    params = gc.nn.init_params(graph(cfg), seed=0, dtype="float32")
    for k in ("wte_w", "wpe_w"):
        params[k] = (params[k] * 0.02).astype(np.float32)
    tokens = rng.integers(0, VOCAB, size=(n, cfg.t + 1))
    return {"tokens": tokens[:, :-1].copy(), "targets": tokens[:, 1:].copy(), **params}


def wrt(cfg: Config) -> tuple[str, ...]:
    """The params, named as `graph`'s gc.nn layers name them (written out, not read from the
    graph: the suite lists its workloads also for a --baseline graphc without these layers)."""
    block = ("ln1_g", "ln1_b", *(f"attn_{s}_{p}" for s in "qkvo" for p in "wb"),
             "ln2_g", "ln2_b", "ff1_w", "ff1_b", "ff2_w", "ff2_b")  # fmt: skip
    layers = (f"h{k}_{name}" for k in range(cfg.layers) for name in block)
    return ("wte_w", "wpe_w", *layers, "ln_f_g", "ln_f_b")
