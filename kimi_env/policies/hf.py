"""``hf:`` policies: a transformers causal LM that serves many episodes at once, with token-exact records.

**Rendering.** An episode's first context is the model's chat template over the environment's first messages
(system prompt with the tool schemas, then the question) with the generation prompt. After each step only the new
messages (``info["new_messages"]`` when the environment gives it, else the observation as one tool message) are
tokenized, as the text the template adds after the last assistant turn, and appended to the ids the model actually
sampled: the context of turn i+1 is turn i's context + its sampled ids + the tokenized tool response, never a
re-rendering of earlier text.
The one exception is context management (``ToolEnv(context_budget=...)``): on a step whose ``info`` says
``context_rewritten``, older tool outputs were replaced by stubs, so the context is rendered afresh from
``info["messages"]``; that turn's ``prompt_ids`` are then this new context, as the model saw it.

**Batched generation (continuous batching).** :class:`BatchedGenerator` keeps, for every live episode, the
key/value cache of its whole context, and decodes all pending turns of all episodes in one running batch, one
forward pass per token. A turn that arrives while the batch decodes (an episode whose tool call just returned) has
only the tokens it has not yet computed (the new tool response) prefilled, and joins the batch before the next token;
a turn that finishes leaves at once and is handed back, so its episode steps its environment while the rest decode,
and its row goes to the next arrival (the batch is rebuilt without idle rows when none comes back). The prompt prefix
every episode shares (the system prompt) is computed once per weights version and reused, and arrivals with
identical contexts (the episodes of one task's group at their first turn) are computed once.

The forward pass is written against the modules of a Llama-family model (``LlamaForCausalLM``: SmolLM2, Llama,
Mistral and Qwen2 shapes), which lets it keep per-episode caches, apply one attention mask for padded caches, and
capture the hidden states entering a chosen layer (the trainer trains only the layers above it and reuses these
activations instead of recomputing the frozen trunk). Other architectures fall back to ``model.generate`` one turn
at a time.

**Sampling.** ``temperature`` (0 or ``greedy=True``: argmax), ``top_p``, ``max_new_tokens``, ``seed``. The recorded
``logprobs`` are log-probabilities under the sampling distribution (temperature applied, top-p renormalized);
greedy records the model's plain log-softmax. Generation stops at the end-of-turn token or at ``</tool_call>`` /
``</answer>`` followed by the end of the turn; a turn that hits ``max_new_tokens`` ends with ``stop_reason="length"``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgumentError
from .base import Action, EpisodePolicy, Policy

__all__ = ["HFPolicy", "BatchedGenerator", "LlamaRunner"]


# ---------------------------------------------------------------------------------------------------- the forward
class LlamaRunner:
    """A functional forward pass over a Llama-family model's own modules, with explicit caches and masks."""

    def __init__(self, model: Any) -> None:
        import torch

        self.torch = torch
        self.model = model
        inner = getattr(model, "model", None)
        layers = getattr(inner, "layers", None)
        if inner is None or layers is None or not hasattr(layers[0], "self_attn") \
                or not hasattr(layers[0].self_attn, "q_proj"):
            raise InvalidArgumentError(
                f"{type(model).__name__} is not a Llama-family model (model.model.layers[i].self_attn.q_proj); "
                "the batched engine cannot run it. Fix: use engine='generate'.")
        self.inner = inner
        self.layers = layers
        cfg = model.config
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.n_layers = len(layers)
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        self._rope = apply_rotary_pos_emb

    def embed(self, ids: Any) -> Any:
        return self.inner.embed_tokens(ids)

    def layer(self, idx: int, h: Any, pos: Any, mask: Any, k_buf: Any = None, v_buf: Any = None,
              write_at: int | None = None) -> tuple[Any, Any, Any]:
        """One decoder layer. With buffers: writes this chunk's K/V at ``write_at`` and attends over
        ``buf[:, :, :write_at + n]``; without: attends within the chunk. Returns (h, k, v)."""
        torch = self.torch
        layer = self.layers[idx]
        attn = layer.self_attn
        b, n, _ = h.shape
        x = layer.input_layernorm(h)
        q = attn.q_proj(x).view(b, n, self.n_heads, self.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(b, n, self.n_kv, self.head_dim).transpose(1, 2)
        v = attn.v_proj(x).view(b, n, self.n_kv, self.head_dim).transpose(1, 2)
        if hasattr(attn, "q_norm"):
            q, k = attn.q_norm(q), attn.k_norm(k)
        cos, sin = self.inner.rotary_emb(h, pos)
        q, k = self._rope(q, k, cos, sin)
        if k_buf is not None:
            k_buf[:, :, write_at:write_at + n] = k
            v_buf[:, :, write_at:write_at + n] = v
            keys, values = k_buf[:, :, :write_at + n], v_buf[:, :, :write_at + n]
        else:
            keys, values = k, v
        # grouped-query attention without copying K/V per query head (repeat_interleave of the whole cache at every
        # layer of every decode step cost ~8x the attention itself here: 197 vs 25 ms for 64 sequences of 600)
        gqa = {"enable_gqa": True} if self.n_kv != self.n_heads else {}
        out = torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=mask, **gqa)
        out = attn.o_proj(out.transpose(1, 2).reshape(b, n, self.n_heads * self.head_dim))
        h = h + out
        h = h + layer.mlp(layer.post_attention_layernorm(h))
        return h, k, v

    def head(self, h: Any) -> Any:
        return self.model.lm_head(self.inner.norm(h))


# ---------------------------------------------------------------------------------------------------- sequences
@dataclass
class _Seq:
    """One episode's token context and the cache of the part already computed."""

    ids: list[int] = field(default_factory=list)          # the whole context so far (prompt + sampled + tool ids)
    cached: int = 0                                        # ids[:cached] have K/V in `keys`/`values`
    keys: list[Any] = field(default_factory=list)          # per layer [n_kv, cached, head_dim]
    values: list[Any] = field(default_factory=list)
    hidden: list[Any] = field(default_factory=list)        # captured hidden states entering the capture layer
    version: int = -1                                      # weights version the cache was computed under
    capture: int | None = None                             # capture layer `hidden` was recorded at (the prefix)


@dataclass
class _Request:
    seq: _Seq
    max_new_tokens: int
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


@dataclass
class _Row:
    """A request being decoded in the running batch."""

    req: _Request
    n_ctx: int                                             # RoPE position of the first sampled token
    out_ids: list[int] = field(default_factory=list)
    out_lp: list[float] = field(default_factory=list)
    hidden: list[Any] = field(default_factory=list)        # captured hidden states of the sampled tokens fed


@dataclass
class _Running:
    """The running batch: per layer K/V buffers [rows, n_kv, cap, head_dim]; row j's context (prompt, then sampled
    tokens fed back) fills columns ``start[j]`` to ``length``; a free row is None."""

    rows: list[_Row | None] = field(default_factory=list)
    start: list[int] = field(default_factory=list)
    freed: list[int] = field(default_factory=list)         # decode step at which each free row was freed
    k: list[Any] = field(default_factory=list)
    v: list[Any] = field(default_factory=list)
    logits: Any = None                                     # next-token logits of every row
    length: int = 0                                        # the write position of the next decode step
    cap: int = 0
    steps: int = 0

    def active(self) -> int:
        return sum(1 for row in self.rows if row is not None)


class BatchedGenerator:
    """Serves generation requests of many episodes in one running batch (see the module docstring)."""

    def __init__(self, model: Any, tokenizer: Any, *, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int = 0, max_batch: int = 64, batch_wait_s: float = 0.01, stop_ids: list[int] | None = None,
                 stop_texts: tuple[str, ...] = ("</tool_call>", "</answer>")) -> None:
        import torch

        self.torch = torch
        self.model = model
        self.tok = tokenizer
        self.runner = LlamaRunner(model)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.max_batch = int(max_batch)
        self.batch_wait_s = float(batch_wait_s)
        self.gen = torch.Generator().manual_seed(int(seed))
        self.stop_ids = set(stop_ids or [])
        self.stop_ids_default = frozenset(self.stop_ids)
        self.stop_texts = stop_texts
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        #: bump after every optimizer step: caches computed under older weights are recomputed
        self.version = 0
        #: compute identical contexts of one admission once (a group's first turn); False only to measure what it saves
        self.dedup = True
        #: free columns left of the longest context when the running batch is rebuilt, so that contexts coming back
        #: with a tool response can join without moving the batch
        self.join_margin = 64
        #: index of the layer whose input hidden states are captured for the trainer (None: no capture)
        self.capture_layer: int | None = None
        self._pending: list[_Request] = []
        self._lock = threading.Lock()
        self._kick: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._prefix: _Seq | None = None
        self.stats = {"rounds": 0, "generated_tokens": 0, "prefill_tokens": 0, "prefix_reused_tokens": 0,
                      "prefill_deduped_tokens": 0, "generate_s": 0.0, "decode_steps": 0, "decode_rows": 0,
                      "reallocs": 0}

    # ------------------------------------------------------------------ shared prefix
    def set_prefix(self, ids: list[int]) -> None:
        """Declare the prompt prefix every episode shares; its cache is computed once per weights version."""
        self._prefix = _Seq(ids=list(ids))

    def new_seq(self, ids: list[int]) -> _Seq:
        seq = _Seq(ids=list(ids))
        p = self._prefix
        if p is not None and len(ids) > len(p.ids) and ids[: len(p.ids)] == p.ids:
            # recompute under new weights, or when activations are now captured at a layer they were not before
            if p.version != self.version or p.cached != len(p.ids) or p.capture != self.capture_layer:
                p.keys, p.values, p.hidden, p.cached = [], [], [], 0
                p.capture = self.capture_layer
                self._compute([p])
            seq.keys, seq.values = list(p.keys), list(p.values)
            seq.hidden = list(p.hidden)
            seq.cached, seq.version = p.cached, p.version
            self.stats["prefix_reused_tokens"] += p.cached
        return seq

    # ------------------------------------------------------------------ async API
    async def generate(self, seq: _Seq, max_new_tokens: int) -> tuple[list[int], list[float], str]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        with self._lock:
            self._pending.append(_Request(seq, max_new_tokens, fut, loop))
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._kick = asyncio.Event()
            self._task = loop.create_task(self._serve())
        self._kick.set()
        return await fut

    async def _serve(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            # let other episodes finish their environment steps and start the batch together
            waited = 0.0
            while waited < self.batch_wait_s and len(self._pending) < self.max_batch:
                await asyncio.sleep(0.002)
                waited += 0.002
            if self._pending:
                await asyncio.to_thread(self._run)
            if self._pending:
                self._kick.set()

    # ------------------------------------------------------------------ prefill (worker thread)
    def _compute(self, seqs: list[_Seq]) -> None:
        """Prefill ``seqs`` without sampling (the shared prefix)."""
        with self.torch.no_grad():
            _, bufs = self._prefill(seqs, extra=0)
            self._store(seqs, bufs)

    def _prefill(self, seqs: list[_Seq], *, extra: int) -> tuple[Any, Any]:
        """Compute the uncached tokens of every sequence in one padded batch: the cached K/V of each sequence sit
        left-padded in the buffers, its new tokens right-aligned after them; ``extra`` free slots follow for
        decoding. Returns (last hidden state of each sequence, (k_bufs, v_bufs, valid, length))."""
        torch = self.torch
        dup = self._dedup(seqs, extra) if self.dedup else None
        if dup is not None:
            return dup
        r = self.runner
        b = len(seqs)
        cached = [s.cached for s in seqs]
        new = [len(s.ids) - s.cached for s in seqs]
        if min(new) < 1:
            raise RuntimeError("a sequence has nothing new to compute")
        c_max, n_max = max(cached), max(new)
        total = c_max + n_max + extra
        dtype = next(self.model.parameters()).dtype
        k_bufs = [torch.zeros(b, r.n_kv, total, r.head_dim, dtype=dtype) for _ in range(r.n_layers)]
        v_bufs = [torch.zeros(b, r.n_kv, total, r.head_dim, dtype=dtype) for _ in range(r.n_layers)]
        valid = torch.zeros(b, total, dtype=torch.bool)
        ids = torch.full((b, n_max), self.pad_id, dtype=torch.long)
        pos = torch.zeros(b, n_max, dtype=torch.long)
        for i, s in enumerate(seqs):
            c, n = cached[i], new[i]
            if c:
                for layer in range(r.n_layers):
                    k_bufs[layer][i, :, c_max - c:c_max] = s.keys[layer]
                    v_bufs[layer][i, :, c_max - c:c_max] = s.values[layer]
                valid[i, c_max - c:c_max] = True
            ids[i, n_max - n:] = torch.tensor(s.ids[c:], dtype=torch.long)
            pos[i, n_max - n:] = torch.arange(c, c + n)
            valid[i, c_max + n_max - n:c_max + n_max] = True
        q_idx = torch.arange(c_max, c_max + n_max)
        k_idx = torch.arange(c_max + n_max)
        mask = valid[:, None, :c_max + n_max] & (k_idx[None, None, :] <= q_idx[None, :, None])
        mask = mask | (k_idx[None, None, :] == q_idx[None, :, None])  # pads attend to themselves (no NaN rows)
        h = r.embed(ids)
        for layer in range(r.n_layers):
            if layer == self.capture_layer:
                for i, s in enumerate(seqs):
                    s.hidden.append(h[i, n_max - new[i]:].clone())
            h, _, _ = r.layer(layer, h, pos, mask[:, None], k_bufs[layer], v_bufs[layer], write_at=c_max)
        for i, s in enumerate(seqs):
            s.version = self.version
        self.stats["prefill_tokens"] += sum(new)
        return h[:, -1], (k_bufs, v_bufs, valid, c_max + n_max)

    def _dedup(self, seqs: list[_Seq], extra: int) -> tuple[Any, Any] | None:
        """Sequences of a round with the same ids over the same cache (a group's episodes at their first turn: one
        task, one prompt) are computed once and their rows copied; None when every sequence is distinct."""
        slot: dict[Any, int] = {}  # context -> its row among the distinct sequences
        uniq: list[_Seq] = []
        rep: list[int] = []  # the distinct row each sequence copies
        for s in seqs:
            key = (s.cached, id(s.keys[0]) if s.keys else 0, tuple(s.ids))
            if key not in slot:
                slot[key] = len(uniq)
                uniq.append(s)
            rep.append(slot[key])
        if len(uniq) == len(seqs):
            return None
        last, (k_bufs, v_bufs, valid, length) = self._prefill(uniq, extra=extra)
        idx = self.torch.tensor(rep)
        for i, s in enumerate(seqs):
            src = uniq[rep[i]]
            if s is not src:
                s.version = src.version
                if self.capture_layer is not None and src.hidden:
                    s.hidden.append(src.hidden[-1])
                self.stats["prefill_deduped_tokens"] += len(s.ids) - s.cached
        return last.index_select(0, idx), ([k.index_select(0, idx) for k in k_bufs],
                                           [v.index_select(0, idx) for v in v_bufs], valid.index_select(0, idx),
                                           length)

    def _store(self, seqs: list[_Seq], bufs: Any) -> None:
        """Keep each sequence's real cache positions (drop the padding) after a round."""
        k_bufs, v_bufs, valid, length = bufs
        for i, s in enumerate(seqs):
            sel = valid[i, :length].nonzero()[:, 0]
            s.keys = [k[i][:, sel] for k in k_bufs]
            s.values = [v[i][:, sel] for v in v_bufs]
            s.cached = int(sel.numel())

    def _sample(self, logits: Any) -> tuple[Any, Any]:
        torch = self.torch
        logits = logits.float()
        if self.temperature <= 0:
            logp = torch.log_softmax(logits, -1)
            tok = logp.argmax(-1)
            return tok, logp.gather(-1, tok[:, None])[:, 0]
        logits = logits / self.temperature
        if self.top_p < 1.0:
            sorted_logits, order = logits.sort(-1, descending=True)
            probs = sorted_logits.softmax(-1)
            drop = probs.cumsum(-1) - probs > self.top_p
            sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
        logp = torch.log_softmax(logits, -1)
        tok = torch.multinomial(logp.exp(), 1, generator=self.gen)[:, 0]
        return tok, logp.gather(-1, tok[:, None])[:, 0]

    # ------------------------------------------------------------------ the running batch (worker thread)
    def _run(self) -> None:
        """Decode until no request is running or pending. Requests that arrive while the batch decodes are prefilled
        and join it before the next token (continuous batching); a row that finishes leaves at once, and its slot is
        reused by the next request or dropped when the batch is compacted."""
        torch = self.torch
        t0 = time.perf_counter()
        st = _Running()
        taken: list[_Request] = []
        try:
            with torch.no_grad():
                while True:
                    with self._lock:
                        room = self.max_batch - st.active()
                        taken, self._pending = self._pending[:room], self._pending[room:]
                    if taken:
                        self._admit(st, taken)
                        taken = []
                    if not st.active():
                        break
                    self._step(st)
        except Exception as exc:  # noqa: BLE001 - every request in flight gets the error; the server lives
            for req in [row.req for row in st.rows if row is not None] + taken:
                if not req.future.done():
                    req.loop.call_soon_threadsafe(_set_exc, req.future, exc)
        finally:
            self.stats["generate_s"] += time.perf_counter() - t0

    def _admit(self, st: _Running, reqs: list[_Request]) -> None:
        """Prefill the new requests' uncached tokens (one padded batch of their own) and place each in a free row of
        the running batch, its context right-aligned at the batch's write position."""
        torch = self.torch
        r = self.runner
        seqs = [req.seq for req in reqs]
        for s in seqs:
            if s.version != self.version:  # weights changed since this cache was computed: recompute from scratch
                s.keys, s.values, s.hidden, s.cached = [], [], [], 0
        last, (k_new, v_new, valid, length) = self._prefill(seqs, extra=0)
        logits = r.head(last[:, None])[:, 0]
        sels = [valid[i, :length].nonzero()[:, 0] for i in range(len(seqs))]
        need = max(int(sel.numel()) for sel in sels)
        remaining = max([req.max_new_tokens for req in reqs]
                        + [row.req.max_new_tokens - len(row.out_ids) for row in st.rows if row is not None])
        free = [j for j, row in enumerate(st.rows) if row is None]
        if (not st.rows or len(free) < len(reqs) or need > st.length
                or st.length + remaining > st.cap):
            self._realloc(st, rows=st.active() + len(reqs), need=need, remaining=remaining, like=logits)
            free = [j for j, row in enumerate(st.rows) if row is None]
        at = st.length
        for i, req in enumerate(reqs):
            j, sel = free[i], sels[i]
            m = int(sel.numel())
            for layer in range(r.n_layers):
                st.k[layer][j, :, at - m:at] = k_new[layer][i].index_select(1, sel)
                st.v[layer][j, :, at - m:at] = v_new[layer][i].index_select(1, sel)
            st.start[j] = at - m
            st.rows[j] = _Row(req=req, n_ctx=len(req.seq.ids))
            st.logits[j] = logits[i]
        self.stats["rounds"] += 1

    def _realloc(self, st: _Running, *, rows: int, need: int, remaining: int, like: Any = None) -> None:
        """New buffers of ``rows`` rows: the live rows move to the front (columns no live row uses are dropped), with
        ``join_margin`` free columns on the left for contexts that come back longer and room on the right for
        ``remaining`` decode steps."""
        torch = self.torch
        r = self.runner
        live = [j for j, row in enumerate(st.rows) if row is not None]
        lo = min((st.start[j] for j in live), default=st.length)
        content = st.length - lo
        length = max(content, need) + self.join_margin
        cap = length + remaining + self.join_margin
        dtype = next(self.model.parameters()).dtype
        k = [torch.zeros(rows, r.n_kv, cap, r.head_dim, dtype=dtype) for _ in range(r.n_layers)]
        v = [torch.zeros(rows, r.n_kv, cap, r.head_dim, dtype=dtype) for _ in range(r.n_layers)]
        ref = st.logits if st.logits is not None else like
        logits = torch.zeros(rows, ref.shape[-1], dtype=ref.dtype)
        n = len(live)
        if n:
            idx = torch.tensor(live)
            for layer in range(r.n_layers):
                k[layer][:n, :, length - content:length] = st.k[layer][idx, :, lo:st.length]
                v[layer][:n, :, length - content:length] = st.v[layer][idx, :, lo:st.length]
            logits[:n] = st.logits[idx]
        shift = length - st.length
        st.start = [st.start[j] + shift for j in live] + [length] * (rows - n)
        st.rows = [st.rows[j] for j in live] + [None] * (rows - n)
        st.freed = [0] * rows
        st.k, st.v, st.logits, st.length, st.cap = k, v, logits, length, cap
        self.stats["reallocs"] += 1

    def _step(self, st: _Running) -> None:
        """Sample a token for every live row, hand back the rows that finished, then one forward pass over all rows."""
        torch = self.torch
        r = self.runner
        live = [j for j, row in enumerate(st.rows) if row is not None]
        tok, lp = self._sample(st.logits.index_select(0, torch.tensor(live)))
        tok, lp = tok.tolist(), lp.tolist()
        st.steps += 1
        for n, j in enumerate(live):
            row = st.rows[j]
            row.out_ids.append(tok[n])
            row.out_lp.append(lp[n])
            reason = ""
            if tok[n] in self.stop_ids:
                reason = "stop"
            elif len(row.out_ids) >= row.req.max_new_tokens:
                reason = "length"
            if reason:  # hand the turn back now; its episode steps while the rest of the batch decodes
                seq = row.req.seq
                seq.keys = [k[j, :, st.start[j]:st.length].clone() for k in st.k]
                seq.values = [v[j, :, st.start[j]:st.length].clone() for v in st.v]
                seq.cached = st.length - st.start[j]
                st.rows[j] = None
                st.freed[j] = st.steps
                self._finish(row.req, row.out_ids, row.out_lp, reason, row.hidden)
        live = [j for j, row in enumerate(st.rows) if row is not None]
        if not live:
            return
        # rows freed for a few steps that no request has come back for: drop them (each row costs a full forward)
        idle = sum(1 for j, row in enumerate(st.rows) if row is None and st.steps - st.freed[j] >= 2)
        remaining = max(st.rows[j].req.max_new_tokens - len(st.rows[j].out_ids) for j in live)
        if idle * 4 >= len(st.rows) or st.length + 1 > st.cap:
            self._realloc(st, rows=len(live), need=0, remaining=remaining)
        b = len(st.rows)
        at = st.length
        feed = torch.tensor([row.out_ids[-1] if row is not None else self.pad_id for row in st.rows])[:, None]
        pos = torch.tensor([row.n_ctx + len(row.out_ids) - 1 if row is not None else 0 for row in st.rows])[:, None]
        start = torch.tensor([s if row is not None else at for s, row in zip(st.start, st.rows)])
        mask = (torch.arange(at + 1)[None, :] >= start[:, None])[:, None, None, :]
        h = r.embed(feed)
        for layer in range(r.n_layers):
            if layer == self.capture_layer:
                for j, row in enumerate(st.rows):
                    if row is not None:
                        row.hidden.append(h[j, 0].clone())
            h, _, _ = r.layer(layer, h, pos, mask, st.k[layer], st.v[layer], write_at=at)
        st.length = at + 1
        st.logits = r.head(h)[:, 0]
        self.stats["decode_steps"] += 1
        self.stats["decode_rows"] += b

    def _finish(self, req: _Request, ids: list[int], lps: list[float], reason: str, hidden: list[Any]) -> None:
        seq = req.seq
        # every sampled token but the last has its K/V in the cache; the last is computed with the next delta
        seq.ids = seq.ids + ids  # (the round stores the cache of all but the last sampled token when it ends)
        if hidden:
            seq.hidden.append(self.torch.stack(hidden))
        self.stats["generated_tokens"] += len(ids)
        req.loop.call_soon_threadsafe(_set_result, req.future, (list(ids), list(lps), reason))


def _set_result(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exc(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


# ---------------------------------------------------------------------------------------------------- the policy
class HFPolicy(Policy):
    """A transformers causal LM as a policy (see the module docstring).

    Args:
        model: Short name (``smollm2-135m``, ``tiny``), local path or hub id; or pass ``model_obj``/``tokenizer``.
        temperature, top_p, max_new_tokens, seed, greedy: Sampling settings (recorded in every trajectory).
        max_batch: Most sequences in one generation round.
        dtype: ``float32`` (CPU default), ``bfloat16`` or ``float16``.
    """

    def __init__(self, model: str = "smollm2-135m", *, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 128, seed: int = 0, greedy: bool = False, max_batch: int = 64,
                 dtype: str = "float32", device: str | None = None, model_obj: Any = None, tokenizer: Any = None,
                 batch_wait_s: float = 0.01) -> None:
        problems = []
        if not (isinstance(temperature, (int, float)) and temperature >= 0):
            problems.append(f"temperature must be >= 0, got {temperature!r}")
        if not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
            problems.append(f"top_p must be in (0, 1], got {top_p!r}")
        if not (isinstance(max_new_tokens, int) and max_new_tokens >= 1):
            problems.append(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
        if problems:
            raise InvalidArgumentError("HFPolicy: " + "; ".join(problems) + ".")
        if model_obj is None:
            from .hf_models import load_model

            model_obj, tokenizer = load_model(model, dtype=dtype, seed=seed, device=device)
        elif tokenizer is None:
            raise InvalidArgumentError("HFPolicy(model_obj=...) also needs tokenizer=.")
        self.model = model_obj
        self.tokenizer = tokenizer
        self.model_name = model if isinstance(model, str) else type(model_obj).__name__
        self.name = f"hf:{self.model_name}"
        self.greedy = bool(greedy) or temperature == 0
        self.temperature = 0.0 if self.greedy else float(temperature)
        self.top_p = float(top_p)
        self.max_new_tokens = int(max_new_tokens)
        self.seed = int(seed)
        end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
        stop_ids = [i for i in {tokenizer.eos_token_id, end} if i is not None]
        self.generator = BatchedGenerator(model_obj, tokenizer, temperature=self.temperature, top_p=self.top_p,
                                          seed=self.seed, max_batch=max_batch, batch_wait_s=batch_wait_s,
                                          stop_ids=stop_ids)
        self._prefix_key: str | None = None
        #: trunk activations of finished episodes, keyed by their token ids (read by the trainer)
        self._captured: dict[int, Any] = {}

    def captured_hidden(self, ids: list[int]) -> Any:
        """The captured activations (entering ``generator.capture_layer``) of every position but the last of a
        finished episode whose full token sequence is ``ids``, or None."""
        return self._captured.pop(hash(tuple(ids)), None)

    def clear_captured(self) -> None:
        self._captured.clear()

    def sampling_settings(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens,
                "seed": self.seed, "greedy": self.greedy}

    # ------------------------------------------------------------------ template helpers
    def render(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(_plain(messages), tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def initial_ids(self, messages: list[dict[str, Any]]) -> list[int]:
        ids = self.encode(self.render(messages, add_generation_prompt=True))
        key = messages[0].get("content", "") if messages and messages[0].get("role") == "system" else None
        if key is not None and key != self._prefix_key:
            sys_ids = self.encode(self.render(messages[:1], add_generation_prompt=False))
            common = 0
            for a, b in zip(sys_ids, ids):
                if a != b:
                    break
                common += 1
            if common >= 8:
                self.generator.set_prefix(ids[:common])
                self._prefix_key = key
        return ids

    def delta_ids(self, new_messages: list[dict[str, Any]], last_completion: list[int]) -> list[int]:
        """Token ids the template adds after an assistant turn that ended with ``last_completion``: the rest of
        that turn's closing text (when the model stopped on a stop string instead of the end-of-turn token), the
        new messages, and the next generation prompt."""
        base = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                {"role": "assistant", "content": "\x00A\x00"}]
        a = self.render(base, add_generation_prompt=False)
        b = self.render(base + list(new_messages), add_generation_prompt=True)
        if not b.startswith(a):
            raise InvalidArgumentError(
                "the chat template is not prefix-stable (rendering more messages changed earlier text); token-exact "
                "deltas need a template that appends. Fix: use a template without history rewriting.")
        trailer = a[a.index("\x00A\x00") + 3:]
        end_text = self.tokenizer.decode(last_completion[-1:], skip_special_tokens=False) if last_completion else ""
        if end_text and trailer.startswith(end_text):
            trailer = trailer[len(end_text):]
        return self.encode(trailer + b[len(a):])

    def episode(self, info: dict[str, Any], *, exclusive: bool = False) -> EpisodePolicy:
        return _HFEpisode(self, info)


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": m.get("role", "user"), "content": m.get("content", "")} for m in messages]


class _HFEpisode(EpisodePolicy):
    def __init__(self, policy: HFPolicy, info: dict[str, Any]) -> None:
        super().__init__(policy)
        self.hf = policy
        messages = info.get("messages") or []
        self.n_messages = len(messages)
        self.seq = policy.generator.new_seq(policy.initial_ids(messages))
        self.last_completion: list[int] = []
        self.turns = 0

    async def aact(self, observation: str, info: dict[str, Any]) -> Action:
        hf = self.hf
        if self.turns > 0 and info.get("context_rewritten"):
            # context management replaced older messages: the context is re-rendered from the conversation as it now
            # stands (this turn's prompt as seen; the trajectory is then no longer append-only)
            self.seq = hf.generator.new_seq(hf.initial_ids(info.get("messages") or []))
        elif self.turns > 0:
            new = info.get("new_messages")
            if new is None:
                new = (info.get("messages") or [])[self.n_messages:]
            # the step's own assistant message is what the model sampled: its ids are already in the context
            new = [m for m in new if m.get("role") != "assistant"] or [{"role": "tool", "content": observation}]
            self.seq.ids = self.seq.ids + hf.delta_ids(list(new), self.last_completion)
        self.n_messages = len(info.get("messages") or []) + 1
        prompt = list(self.seq.ids)
        ids, lps, reason = await hf.generator.generate(self.seq, hf.max_new_tokens)
        self.last_completion = ids
        self.turns += 1
        text = hf.tokenizer.decode(ids, skip_special_tokens=True)
        return Action(text=text, prompt_ids=prompt, completion_ids=ids, logprobs=lps, stop_reason=reason)

    def close(self) -> None:
        seq = self.seq
        if self.hf.generator.capture_layer is not None and seq.hidden:
            import torch

            h = torch.cat(seq.hidden)
            if h.shape[0] == len(seq.ids) - 1:
                self.hf._captured[hash(tuple(seq.ids))] = h
        seq.keys, seq.values, seq.hidden = [], [], []
