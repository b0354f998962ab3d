"""ModelWorker: one loaded causal LM serving capture, batched per-row steering, norms and projections.

``ModelActor`` (in ``model_actor.py``) is this class as a Ray actor; the class itself runs without Ray, which keeps
unit tests and single-process scripts fast.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .generation import SamplingConfig, decode
from .hooks import SteeringDeltas, capturing, steering
from .layers import LayerOutOfRangeError, check_layer, num_layers, resolve_layout
from .loading import ModelSpec, load_model
from .messages import (
    STEERABLE_COMPONENTS,
    ActivationNorms,
    CaptureReply,
    CaptureRequest,
    ModelInfo,
    ProjectReply,
    ProjectRequest,
    PromptInput,
    SteeringTerm,
    SteerReply,
    SteerRequest,
    SteerRow,
)
from .positions import parse_positions
from .prompts import encode_prompt, encode_response, left_pad, position_ids_from_mask

logger = logging.getLogger(__name__)


class VectorError(ValueError):
    """A steering vector that is missing, malformed or not finite."""


class ModelWorker:
    """Hosts one model; every method takes a frozen request and returns a frozen reply.

    Example:
        >>> worker = ModelWorker(ModelSpec("/models/llama-sft"))  # doctest: +SKIP
        >>> worker.load_vectors({"optimism": vectors})  # [num_layers, hidden]  # doctest: +SKIP
        >>> worker.steer(  # doctest: +SKIP
        ...     SteerRequest(rows=(SteerRow("Hi", (SteeringTerm("optimism", 4, 6.0),)),))).texts
    """

    def __init__(self, spec: ModelSpec | str, max_batch_size: int = 64):
        self.spec = ModelSpec(spec) if isinstance(spec, str) else spec
        self.model, self.tokenizer = load_model(self.spec)
        self.layout = resolve_layout(self.model, self.spec.layer_layout)
        self.num_layers = num_layers(self.model, self.layout)
        self.hidden_size = int(self.model.config.hidden_size)
        self.max_batch_size = max_batch_size
        self.device = self.model.get_input_embeddings().weight.device
        self._vectors: dict[str, torch.Tensor] = {}
        self._vector_layers: dict[str, frozenset[int]] = {}
        self._eos_ids = self._find_eos_ids()
        self._special_ids = set(self.tokenizer.all_special_ids)

    # -- description -------------------------------------------------------------------------------------------

    def info(self) -> ModelInfo:
        params = list(self.model.parameters())
        kv_module = self.model.get_submodule(self.layout.layers)[0].get_submodule(self.layout.v_proj)
        return ModelInfo(
            name_or_path=self.spec.path,
            architecture=type(self.model).__name__,
            model_type=str(self.model.config.model_type),
            num_layers=self.num_layers,
            hidden_size=self.hidden_size,
            kv_dim=int(getattr(kv_module, "out_features", self.hidden_size)),
            dtype=str(params[0].dtype).removeprefix("torch."),
            devices=tuple(sorted({str(p.device) for p in params})),
            parameter_bytes=sum(p.numel() * p.element_size() for p in params),
            has_chat_template=bool(self.tokenizer.chat_template),
            vocab_size=len(self.tokenizer),
        )

    def ping(self) -> str:
        return "ok"

    # -- vectors -----------------------------------------------------------------------------------------------

    def load_vectors(self, vectors: Mapping[str, np.ndarray | Mapping[int, np.ndarray]]) -> list[str]:
        """Keep steering vectors on the model's device; requests then name them by id.

        A value is an array ``[num_layers, hidden]`` (every layer) or a mapping ``{layer: [hidden]}``. Loading an
        id again replaces it.
        """
        for vector_id, value in vectors.items():
            table = torch.zeros(self.num_layers, self.hidden_size, dtype=torch.float32)
            if isinstance(value, Mapping):
                layers = set()
                for layer, vector in value.items():
                    try:
                        index = check_layer(self.model, self.layout, int(layer))
                    except LayerOutOfRangeError as error:
                        raise VectorError(f"vector {vector_id!r}: {error}") from error
                    table[index] = self._as_vector(vector_id, layer, vector)
                    layers.add(index)
            else:
                array = np.asarray(value)
                if array.shape != (self.num_layers, self.hidden_size):
                    raise VectorError(
                        f"vector {vector_id!r}: shape {array.shape} does not match this model's "
                        f"[num_layers, hidden] = [{self.num_layers}, {self.hidden_size}]; pass one row per layer "
                        "or a {layer: vector} mapping"
                    )
                for layer in range(self.num_layers):
                    table[layer] = self._as_vector(vector_id, layer, array[layer])
                layers = set(range(self.num_layers))
            self._vectors[vector_id] = table.to(self.device)
            self._vector_layers[vector_id] = frozenset(layers)
        return sorted(vectors)

    def _as_vector(self, vector_id: str, layer: int, vector: np.ndarray) -> torch.Tensor:
        array = np.asarray(vector, dtype=np.float32)
        if array.shape != (self.hidden_size,):
            raise VectorError(
                f"vector {vector_id!r} layer {layer}: shape {array.shape}, expected ({self.hidden_size},) "
                f"(the model's hidden size)"
            )
        if not np.all(np.isfinite(array)):
            raise VectorError(
                f"vector {vector_id!r} layer {layer} holds NaN or inf values; re-extract it (e.g. a class with no "
                "samples gives NaN means) or drop that layer"
            )
        return torch.from_numpy(array)

    def vector_ids(self) -> list[str]:
        return sorted(self._vectors)

    def _term_layer(self, term: SteeringTerm) -> int:
        """The term's layer as a 0-based index, after checking its vector is loaded at that layer."""
        if term.vector_id not in self._vectors:
            loaded = ", ".join(sorted(self._vectors)) or "none"
            raise VectorError(
                f"steering term names vector {term.vector_id!r}, which is not loaded (loaded: {loaded}); "
                "call load_vectors first"
            )
        layer = check_layer(self.model, self.layout, term.layer)
        if layer not in self._vector_layers[term.vector_id]:
            raise VectorError(
                f"vector {term.vector_id!r} has no layer {layer} (it has "
                f"{sorted(self._vector_layers[term.vector_id])}); load that layer or steer another"
            )
        return layer

    def _check_terms(self, rows: Sequence[SteerRow]) -> None:
        """Fail on a bad term of any row before the first batch runs."""
        for row in rows:
            for term in row.terms:
                self._term_layer(term)

    def _deltas(self, rows: Sequence[SteerRow]) -> dict[tuple[int, str], torch.Tensor]:
        deltas: dict[tuple[int, str], torch.Tensor] = {}
        for row_index, row in enumerate(rows):
            for term in row.terms:
                layer = self._term_layer(term)
                key = (layer, term.component)
                if key not in deltas:
                    deltas[key] = torch.zeros(len(rows), self.hidden_size, device=self.device)
                deltas[key][row_index] += term.coefficient * self._vectors[term.vector_id][layer]
        return deltas

    # -- generation --------------------------------------------------------------------------------------------

    def _find_eos_ids(self) -> set[int]:
        ids = set()
        for source in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(source, int):
                ids.add(source)
            elif isinstance(source, list | tuple):
                ids.update(int(i) for i in source)
        return ids

    def _batches(self, n: int, lengths: Sequence[int], size: int) -> list[list[int]]:
        """Row indices grouped into batches of similar length (less padding); callers restore the order."""
        order = sorted(range(n), key=lambda i: lengths[i])
        return [order[start:start + size] for start in range(0, n, size)]

    @torch.inference_mode()
    def _generate(
        self, request: SteerRequest, rows: Sequence[SteerRow], prompt_ids: Sequence[list[int]],
        record: list[tuple[int, str]] | None = None,
    ) -> tuple[list[list[int]], list[bool], dict[tuple[int, str], list[torch.Tensor]]]:
        """One batch; ``rows`` come from ``_with_seed``, so every row carries its sampling seed."""
        input_ids, attention_mask = left_pad(prompt_ids, self.tokenizer.pad_token_id)
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        width = input_ids.shape[1]
        active_from = None if request.steer_prompt else torch.full((len(rows),), width, dtype=torch.long)
        plan = SteeringDeltas(self._deltas(rows), active_from=active_from)

        def advance(offset: int) -> None:
            plan.offset = offset

        config = SamplingConfig(
            max_new_tokens=request.max_new_tokens, do_sample=request.do_sample, temperature=request.temperature,
            top_p=request.top_p, stop_at_eos=request.stop_at_eos,
        )
        with steering(self.model, self.layout, plan), capturing(self.model, self.layout, record or []) as records:
            output = decode(
                self.model, input_ids, attention_mask, config, self._eos_ids, self.tokenizer.pad_token_id,
                seeds=[row.seed for row in rows], before_forward=advance,
            )
        return output.tokens, output.stopped_at_eos, records

    def steer(self, request: SteerRequest) -> SteerReply:
        """Generate for every row with that row's own steering; rows come back in request order."""
        started = time.perf_counter()
        self._check_terms(request.rows)
        prompt_ids = [encode_prompt(self.tokenizer, row.prompt) for row in request.rows]
        tokens: list[list[int]] = [[] for _ in request.rows]
        stopped = [False] * len(request.rows)
        for batch in self._batches(len(request.rows), [len(p) for p in prompt_ids], self.max_batch_size):
            rows = [self._with_seed(request, i) for i in batch]
            batch_tokens, batch_stopped, _ = self._generate(request, rows, [prompt_ids[i] for i in batch])
            for j, i in enumerate(batch):
                tokens[i], stopped[i] = batch_tokens[j], batch_stopped[j]
        return self._reply(request, prompt_ids, tokens, stopped, time.perf_counter() - started)

    def _with_seed(self, request: SteerRequest, index: int) -> SteerRow:
        row = request.rows[index]
        if row.seed is not None:
            return row
        return SteerRow(prompt=row.prompt, terms=row.terms, seed=request.seed + index, tag=row.tag)

    def _reply(
        self, request: SteerRequest, prompt_ids: Sequence[list[int]], tokens: Sequence[list[int]],
        stopped: Sequence[bool], seconds: float,
    ) -> SteerReply:
        return SteerReply(
            texts=tuple(self.tokenizer.decode(t, skip_special_tokens=True) for t in tokens),
            token_ids=tuple(tuple(t) for t in tokens),
            prompt_token_counts=tuple(len(p) for p in prompt_ids),
            response_token_counts=tuple(len(t) for t in tokens),
            stopped_at_eos=tuple(stopped),
            tags=tuple(row.tag for row in request.rows),
            seconds=seconds,
        )

    def project(self, request: ProjectRequest) -> ProjectReply:
        """Generate like ``steer`` and record ``h . v / |v|`` at every generation step (monitoring)."""
        if request.component not in STEERABLE_COMPONENTS:
            raise ValueError(f"component: {request.component!r} cannot be projected; use one of "
                             f"{', '.join(STEERABLE_COMPONENTS)}")
        started = time.perf_counter()
        steer_request = request.steer
        self._check_terms(steer_request.rows)
        layers = [check_layer(self.model, self.layout, layer) for layer in request.layers]
        units = []
        for vector_id in request.vector_ids:
            if vector_id not in self._vectors:
                raise VectorError(f"vector {vector_id!r} is not loaded; call load_vectors first")
            table = self._vectors[vector_id][layers]
            units.append(table / table.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        unit = torch.stack(units)  # [n_vectors, n_layers, hidden]
        prompt_ids = [encode_prompt(self.tokenizer, row.prompt) for row in steer_request.rows]
        n = len(steer_request.rows)
        tokens: list[list[int]] = [[] for _ in range(n)]
        stopped = [False] * n
        projections: list[np.ndarray] = [np.zeros((0, len(units), len(layers)), np.float32)] * n
        points = [(layer, request.component) for layer in layers]
        for batch in self._batches(n, [len(p) for p in prompt_ids], self.max_batch_size):
            rows = [self._with_seed(steer_request, i) for i in batch]
            batch_tokens, batch_stopped, records = self._generate(
                steer_request, rows, [prompt_ids[i] for i in batch], record=points
            )
            # records[point][step] is [batch, tokens_in_pass, hidden]; the last position produced the next token.
            per_step = torch.stack(
                [torch.stack([records[p][s][:, -1, :].float() for p in points], dim=1)
                 for s in range(len(records[points[0]]))], dim=1,
            )  # [batch, steps, n_layers, hidden]
            values = torch.einsum("bsld,vld->bsvl", per_step, unit.to(per_step.device)).cpu().numpy()
            for j, i in enumerate(batch):
                tokens[i], stopped[i] = batch_tokens[j], batch_stopped[j]
                projections[i] = values[j, : len(batch_tokens[j])]
        return ProjectReply(
            generation=self._reply(steer_request, prompt_ids, tokens, stopped, time.perf_counter() - started),
            projections=tuple(projections), vector_ids=tuple(request.vector_ids), layers=tuple(layers),
        )

    # -- capture -----------------------------------------------------------------------------------------------

    def _responses(self, request: CaptureRequest, prompt_ids: list[list[int]]) -> list[list[int]]:
        if request.responses is not None:
            return [encode_response(self.tokenizer, r) for r in request.responses]
        if not request.generate:
            return [[] for _ in prompt_ids]
        steer_request = SteerRequest(
            rows=tuple(SteerRow(prompt=p) for p in request.prompts), max_new_tokens=request.max_new_tokens,
            do_sample=request.do_sample, temperature=request.temperature, seed=request.seed,
        )
        responses = [[] for _ in prompt_ids]
        for batch in self._batches(len(prompt_ids), [len(p) for p in prompt_ids], request.batch_size):
            rows = [self._with_seed(steer_request, i) for i in batch]
            batch_tokens, _, _ = self._generate(steer_request, rows, [prompt_ids[i] for i in batch])
            for j, i in enumerate(batch):
                # The EOS that ended a response is not part of it: replaying the text would not contain it.
                responses[i] = [t for t in batch_tokens[j] if t not in self._eos_ids]
        return responses

    @torch.inference_mode()
    def _forward_capture(
        self, sequences: Sequence[list[int]], points: list[tuple[int, str]]
    ) -> tuple[dict[tuple[int, str], torch.Tensor], int]:
        """One forward pass over left-padded sequences; returns each point's output ``[batch, width, dim]``."""
        input_ids, attention_mask = left_pad(sequences, self.tokenizer.pad_token_id)
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        with capturing(self.model, self.layout, points) as records:
            self.model(input_ids=input_ids, attention_mask=attention_mask,
                       position_ids=position_ids_from_mask(attention_mask), use_cache=False)
        return {point: records[point][0] for point in points}, input_ids.shape[1]

    def capture(self, request: CaptureRequest) -> CaptureReply:
        """Activations at the requested layers x components x positions (see ``CaptureRequest``)."""
        started = time.perf_counter()
        layers = (list(range(self.num_layers)) if request.layers is None
                  else [check_layer(self.model, self.layout, layer) for layer in request.layers])
        positions = parse_positions(request.positions)
        points = [(layer, component) for layer in layers for component in request.components]
        prompt_ids = [encode_prompt(self.tokenizer, p) for p in request.prompts]
        response_ids = self._responses(request, prompt_ids)
        n = len(prompt_ids)
        per_token: dict[tuple[int, str, str], list[np.ndarray | None]] = defaultdict(lambda: [None] * n)
        means: dict[tuple[int, str, str], np.ndarray] = {}
        lengths = [len(p) + len(r) for p, r in zip(prompt_ids, response_ids, strict=True)]
        for batch in self._batches(n, lengths, request.batch_size):
            sequences = [prompt_ids[i] + response_ids[i] for i in batch]
            outputs, width = self._forward_capture(sequences, points)
            for position in positions:
                selections = [
                    [width - lengths[i] + t for t in position.indices(len(prompt_ids[i]), len(response_ids[i]))]
                    for i in batch
                ]
                if request.per_token:
                    for layer, component in points:
                        values = outputs[(layer, component)].float().cpu().numpy()
                        for j, i in enumerate(batch):
                            per_token[(layer, component, position.text)][i] = values[j, selections[j]]
                    continue
                # One weighted sum per point: weights[j, t] = 1/count on the row's selected tokens, else 0.
                weights = torch.zeros(len(batch), width, device=self.device)
                for j, selected in enumerate(selections):
                    if selected:
                        weights[j, selected] = 1.0 / len(selected)
                empty = [j for j, selected in enumerate(selections) if not selected]
                for layer, component in points:
                    key = (layer, component, position.text)
                    mean = torch.einsum("bt,btd->bd", weights, outputs[(layer, component)].float()).cpu().numpy()
                    mean[empty] = np.nan
                    if key not in means:
                        means[key] = np.full((n, mean.shape[-1]), np.nan, dtype=np.float32)
                    means[key][batch] = mean
        activations: dict[tuple[int, str, str], np.ndarray | tuple[np.ndarray, ...]]
        if request.per_token:
            activations = {key: tuple(values) for key, values in per_token.items()}  # type: ignore[misc]
        else:
            activations = dict(means)
        return CaptureReply(
            activations=activations,
            prompt_token_ids=tuple(tuple(p) for p in prompt_ids),
            response_token_ids=tuple(tuple(r) for r in response_ids),
            # Special tokens other than EOS stay in the text, so replaying the text gives back the same tokens.
            responses=tuple(self.tokenizer.decode(r, skip_special_tokens=False) for r in response_ids),
            seconds=time.perf_counter() - started,
        )

    def activation_norms(
        self, layers: Sequence[int] | None, component: str, prompts: Sequence[PromptInput],
        position: str = "all[:]", batch_size: int = 16,
    ) -> ActivationNorms:
        """Mean L2 norm of ``component``'s output per layer over the position's tokens (special tokens skipped)."""
        layers = list(range(self.num_layers)) if layers is None else [
            check_layer(self.model, self.layout, layer) for layer in layers
        ]
        parsed = parse_positions([position])[0]
        points = [(layer, component) for layer in layers]
        prompt_ids = [encode_prompt(self.tokenizer, p) for p in prompts]
        totals = dict.fromkeys(layers, 0.0)
        count = 0
        for batch in self._batches(len(prompt_ids), [len(p) for p in prompt_ids], batch_size):
            outputs, width = self._forward_capture([prompt_ids[i] for i in batch], points)
            for j, i in enumerate(batch):
                pad = width - len(prompt_ids[i])
                index = [pad + t for t in parsed.indices(len(prompt_ids[i]), 0)
                         if prompt_ids[i][t] not in self._special_ids]
                if not index:
                    continue
                count += len(index)
                selected = torch.tensor(index, dtype=torch.long, device=self.device)
                for layer in layers:
                    norms = outputs[(layer, component)][j].index_select(0, selected).float().norm(dim=-1)
                    totals[layer] += float(norms.sum())
        if count == 0:
            raise ValueError(f"activation_norms: position {position!r} selects no non-special token in any prompt")
        return ActivationNorms(
            component=component, position=position, norms={layer: totals[layer] / count for layer in layers},
            n_tokens=count, n_prompts=len(prompt_ids),
        )

    @torch.inference_mode()
    def top_logprobs(self, prompts: Sequence[PromptInput], k: int = 20) -> list[list[tuple[str, float]]]:
        """The ``k`` most likely next tokens after each prompt, as (decoded token, natural-log probability)."""
        prompt_ids = [encode_prompt(self.tokenizer, p) for p in prompts]
        results: list[list[tuple[str, float]]] = [[] for _ in prompt_ids]
        for batch in self._batches(len(prompt_ids), [len(p) for p in prompt_ids], self.max_batch_size):
            input_ids, attention_mask = left_pad([prompt_ids[i] for i in batch], self.tokenizer.pad_token_id)
            input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                position_ids=position_ids_from_mask(attention_mask), use_cache=False).logits
            logprobs = torch.log_softmax(logits[:, -1, :].float(), dim=-1)
            values, indices = logprobs.topk(min(k, logprobs.shape[-1]), dim=-1)
            for j, i in enumerate(batch):
                results[i] = [(self.tokenizer.decode([int(t)]), float(v))
                              for t, v in zip(indices[j].tolist(), values[j].tolist(), strict=True)]
        return results
