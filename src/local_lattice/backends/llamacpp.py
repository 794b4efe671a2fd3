"""In-process llama.cpp (llama-cpp-python) for GGUF models.

Owns the llama.cpp specifics only: opening a GGUF, rendering the model's own chat template,
tokenizing, the sampling loop, and grammars: a JSON schema (tools, JSON mode) becomes a llama.cpp
grammar with llama-cpp-python's own converter, and the sampler holds every token to it.
Everything else (residency, the worker-thread bridge, answers, the answer's shape) is the shared
``EngineBackend``. ``llama_cpp`` is imported when this module is, which the registry does only
when a ``llamacpp`` backend is configured.
"""

from __future__ import annotations

import codecs
import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import llama_cpp
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

from local_lattice.config import BackendConfig
from local_lattice.engines.discovery import LocalModel
from local_lattice.engines.engine import EngineBackend, Loaded, Message, SchemaDecoding, Shared
from local_lattice.engines.sampling import Sampling
from local_lattice.errors import InvalidRequest
from local_lattice.types import JSONObject

# A plain template for GGUFs without one, so a chat still works (ChatML is the most common).
_FALLBACK_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def default_threads() -> int:
    """All cores but one: llama.cpp's threads wait for each other at every step, so one thread
    descheduled by the event loop's own work (HTTP, SSE) stalls them all; on 2 cores a spare core
    keeps decode speed steady under load instead of collapsing."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - 1)


class LlamaModel:
    """An open GGUF: the llama.cpp object, its chat formatter and the abort callback llama.cpp holds
    (kept here so it lives as long as the context that calls it)."""

    def __init__(self, llm: Any, formatter: Jinja2ChatFormatter) -> None:
        self.llm = llm
        self.formatter = formatter
        self.abort: Any = None


def abort_when_stopped(loaded: Loaded[LlamaModel]) -> None:
    """Let llama.cpp abort a decode half-way once the running generation's stop is set: evaluating a
    long prompt is one step, which would otherwise run to its end for a client that is gone."""

    def aborted(_data: Any) -> bool:
        stop = loaded.stop
        return stop is not None and stop.is_set()

    loaded.model.abort = llama_cpp.ggml_abort_callback(aborted)
    llama_cpp.llama_set_abort_callback(loaded.model.llm._ctx.ctx, loaded.model.abort, None)


# A call's envelope writes its name before its arguments, so a stream can name the call early.
_PROPERTY_ORDER = ["name", "arguments"]
_GRAMMARS_KEPT = 64
# llama-cpp-python's copy of the converter lets a JSON string hold raw control characters (a raw
# newline inside a string is no JSON); llama.cpp's own converter excludes them, and so do we.
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def schema_grammar(schema_json: str) -> str:
    """The GBNF grammar of a JSON schema (a call's envelope writes ``name`` before ``arguments``)."""
    grammar: str = json_schema_to_gbnf(schema_json, _PROPERTY_ORDER)
    return grammar.replace(_LOOSE_CHAR, _JSON_CHAR)


class LlamaCppBackend(EngineBackend[LlamaModel], SchemaDecoding):
    format = "gguf"
    engine = "llama.cpp"

    def __init__(self, config: BackendConfig, shared: Shared) -> None:
        # Generations of resident models, plus a load or unload that must not wait behind them.
        workers = max(4, shared.engines.max_concurrent_models * 2 + 1)
        super().__init__(config, shared, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llamacpp"))
        self._grammars: dict[str, LlamaGrammar] = {}  # agents send the same tools again and again
        self._grammars_lock = threading.Lock()  # compiled in worker threads

    def compile_schema(self, schema: JSONObject, param: str) -> LlamaGrammar:
        key = json.dumps(schema, sort_keys=True)
        with self._grammars_lock:
            grammar = self._grammars.get(key)
        if grammar is not None:
            return grammar
        try:
            grammar = LlamaGrammar.from_string(schema_grammar(key))
        except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError, RecursionError) as exc:
            raise InvalidRequest(f"the JSON schema cannot be used to constrain decoding: {exc}", param=param) from None
        with self._grammars_lock:
            if len(self._grammars) >= _GRAMMARS_KEPT:
                self._grammars.pop(next(iter(self._grammars)))
            self._grammars[key] = grammar
        return grammar

    def device(self) -> str:
        return "cpu"  # no layers are offloaded (llama.cpp's n_gpu_layers stays 0)

    def open_model(self, model: LocalModel) -> Loaded[LlamaModel]:
        llm = llama_cpp.Llama(
            model_path=str(model.path),
            n_ctx=self.config.n_ctx,
            n_threads=self.config.n_threads or default_threads(),
            verbose=False,
        )
        vocab = llm._model
        eos_id, bos_id = llm.token_eos(), llm.token_bos()
        formatter = Jinja2ChatFormatter(
            template=llm.metadata.get("tokenizer.chat_template") or _FALLBACK_TEMPLATE,
            eos_token=vocab.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=vocab.token_get_text(bos_id) if bos_id != -1 else "",
        )
        loaded = Loaded(LlamaModel(llm, formatter), n_ctx=llm.n_ctx(), lock=threading.Lock())
        abort_when_stopped(loaded)
        return loaded

    def close_model(self, loaded: Loaded[LlamaModel]) -> None:
        loaded.model.llm.close()

    def encode_chat(self, loaded: Loaded[LlamaModel], messages: list[Message]) -> list[int]:
        rendered = loaded.model.formatter(messages=messages)  # type: ignore[arg-type]
        tokens: list[int] = loaded.model.llm.tokenize(
            rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
        )
        return tokens

    def encode_text(self, loaded: Loaded[LlamaModel], prompt: str) -> list[int]:
        tokens: list[int] = loaded.model.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        return tokens

    def token_steps(
        self, loaded: Loaded[LlamaModel], tokens: list[int], sampling: Sampling, constraint: Any = None
    ) -> Iterator[str | None]:
        llm = loaded.model.llm
        llm.set_seed(sampling.seed)
        vocab = llm._model.vocab
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        steps = llm.generate(tokens, temp=sampling.temperature, top_p=sampling.top_p, reset=True, grammar=constraint)
        for token in steps:
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                yield None
                return
            yield decoder.decode(llm.detokenize([token]))
