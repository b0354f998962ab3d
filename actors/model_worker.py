"""ModelWorker: one loaded causal LM serving capture, batched per-row steering, norms and projections.

``ModelActor`` (in ``model_actor.py``) is this class as a Ray actor; the class itself runs without Ray, which keeps
unit tests and single-process scripts fast.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .capacity import row_capacity
from .fast_generation import FastGenerator, length_bucket
from .fast_model import FastModel, FastPathUnsupported
from .generation import GenerationOutput, SamplingConfig, steered_decode
from .hooks import capturing
from .layers import check_layer, num_layers, resolve_layout
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
    SteerReply,
    SteerRequest,
    SteerRow,
)
from .positions import parse_positions
from .prompts import encode_prompt, encode_response, left_pad, position_ids_from_mask
from .vectors import VectorError, VectorTable

logger = logging.getLogger(__name__)

__all__ = ["ModelWorker", "VectorError"]


class ModelWorker:
    """Hosts one model; every method takes a frozen request and returns a frozen reply.

    Example:
        >>> worker = ModelWorker(ModelSpec("/models/llama-sft"))  # doctest: +SKIP
        >>> worker.load_vectors({"optimism": vectors})  # [num_layers, hidden]  # doctest: +SKIP
        >>> worker.steer(  # doctest: +SKIP
        ...     SteerRequest(rows=(SteerRow("Hi", (SteeringTerm("optimism", 4, 6.0),)),))).texts
    """

    def __init__(self, spec: ModelSpec | str, max_batch_size: int = 64, fast: bool | None = None,
                 max_fast_slots: int = 512):
        """``fast``: use the fast generation path (static cache, CUDA graphs, continuous batching) for ``steer`` and
        generated captures. Default: on CUDA yes, on CPU no; the environment variable ``STEERSWEEP_FAST=0|1``
        overrides the default. ``project`` always runs the reference path (it records every step's activations)."""
        self.spec = ModelSpec(spec) if isinstance(spec, str) else spec
        self.model, self.tokenizer = load_model(self.spec)
        self.layout = resolve_layout(self.model, self.spec.layer_layout)
        self.num_layers = num_layers(self.model, self.layout)
        self.hidden_size = int(self.model.config.hidden_size)
        self.max_batch_size = max_batch_size
        self.device = self.model.get_input_embeddings().weight.device
        self.vectors = VectorTable(self.num_layers, self.hidden_size, self.device, self._check_layer)
        self._eos_ids = self._find_eos_ids()
        self._special_ids = set(self.tokenizer.all_special_ids)
        self.max_fast_slots = max_fast_slots
        self.fast_generator = self._fast_generator(fast)

    def _fast_generator(self, fast: bool | None) -> FastGenerator | None:
        if fast is None:
            setting = os.environ.get("STEERSWEEP_FAST", "")
            fast = setting == "1" if setting in ("0", "1") else self.device.type == "cuda"
        if not fast:
            return None
        try:
            return FastGenerator(FastModel(self.model))
        except FastPathUnsupported as error:
            logger.warning("fast generation path off for %s: %s; using the reference path", self.spec.path, error)
            return None

    def _check_layer(self, layer: int) -> int:
        return check_layer(self.model, self.layout, layer)

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

    # -- vectors and capacity --------------------------------------------------------------------------------

    def load_vectors(self, vectors: Mapping[str, np.ndarray | Mapping[int, np.ndarray]]) -> list[str]:
        """Keep steering vectors on the model's device; requests then name them by id.

        A value is an array ``[num_layers, hidden]`` (every layer) or a mapping ``{layer: [hidden]}``. Loading an
        id again replaces it.
        """
        return self.vectors.load(vectors)

    def vector_ids(self) -> list[str]:
        return self.vectors.ids()

    def row_capacity(self, prompt_tokens: int, new_tokens: int) -> int:
        """Rows of ``prompt_tokens`` prompt + ``new_tokens`` generated tokens that fit free memory now (CPU: a cap)."""
        dtype = self.model.get_input_embeddings().weight.dtype
        held = self.fast_generator.held_bytes() if self.fast_generator is not None else 0
        return row_capacity(self.model.config, dtype, self.device, int(prompt_tokens), int(new_tokens),
                            reusable_bytes=held)

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

    def _padded(self, sequences: Sequence[Sequence[int]], bucket: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ``input_ids`` and ``attention_mask`` on the model's device.

        ``bucket`` widens the padding to the fast path's length bucket, so captures repeat a few shapes.
        """
        input_ids, attention_mask = left_pad(sequences, self.tokenizer.pad_token_id)
        extra = length_bucket(input_ids.shape[1]) - input_ids.shape[1] if bucket else 0
        if extra:
            input_ids = torch.cat([input_ids.new_full((len(sequences), extra), self.tokenizer.pad_token_id),
                                   input_ids], dim=1)
            attention_mask = torch.cat([attention_mask.new_zeros((len(sequences), extra)), attention_mask], dim=1)
        return input_ids.to(self.device), attention_mask.to(self.device)

    def _with_seed(self, request: SteerRequest, index: int) -> SteerRow:
        row = request.rows[index]
        if row.seed is not None:
            return row
        return SteerRow(prompt=row.prompt, terms=row.terms, seed=request.seed + index, tag=row.tag)

    @torch.inference_mode()
    def _generate_all(
        self, request: SteerRequest, prompt_ids: Sequence[list[int]], batch_size: int,
        points: Sequence[tuple[int, str]] = (),
    ) -> GenerationOutput:
        """The one batch loop behind ``steer``, ``project`` and generated captures; rows come back in request order.

        ``points`` asks for every step's activation at those (layer, component)s (``project``).
        """
        self.vectors.check_rows(request.rows)
        n = len(request.rows)
        rows = [self._with_seed(request, i) for i in range(n)]
        config = SamplingConfig(
            max_new_tokens=request.max_new_tokens, do_sample=request.do_sample, temperature=request.temperature,
            top_p=request.top_p, stop_at_eos=request.stop_at_eos,
        )
        if self.fast_generator is not None and not points:
            longest = max(len(p) for p in prompt_ids)
            try:
                self.fast_generator.fast.check_length(longest + request.max_new_tokens)
            except FastPathUnsupported as error:
                logger.info("reference path for this request: %s", error)
            else:
                slots = min(self.max_fast_slots, max(1, self.row_capacity(longest, request.max_new_tokens)))
                return self.fast_generator.generate(
                    prompt_ids, self.vectors.deltas(rows), config, [row.seed for row in rows], self._eos_ids,
                    steer_prompt=request.steer_prompt, max_slots=slots,
                )
        result = GenerationOutput(tokens=[[] for _ in range(n)], stopped_at_eos=[False] * n,
                                  activations=[None] * n if points else None)
        for batch in self._batches(n, [len(p) for p in prompt_ids], batch_size):
            input_ids, attention_mask = self._padded([prompt_ids[i] for i in batch])
            batch_rows = [rows[i] for i in batch]
            output = steered_decode(
                self.model, self.layout, input_ids, attention_mask, config, self._eos_ids,
                self.tokenizer.pad_token_id, deltas=self.vectors.deltas(batch_rows),
                seeds=[row.seed for row in batch_rows], steer_prompt=request.steer_prompt, points=list(points),
            )
            for j, i in enumerate(batch):
                result.tokens[i], result.stopped_at_eos[i] = output.tokens[j], output.stopped_at_eos[j]
                if points:
                    result.activations[i] = output.activations[j]
        return result

    def steer(self, request: SteerRequest) -> SteerReply:
        """Generate for every row with that row's own steering; rows come back in request order."""
        started = time.perf_counter()
        prompt_ids = [encode_prompt(self.tokenizer, row.prompt) for row in request.rows]
        output = self._generate_all(request, prompt_ids, self.max_batch_size)
        return self._reply(request, prompt_ids, output, time.perf_counter() - started)

    def _reply(
        self, request: SteerRequest, prompt_ids: Sequence[list[int]], output: GenerationOutput, seconds: float,
    ) -> SteerReply:
        tokens, stopped = output.tokens, output.stopped_at_eos
        # Raw text keeps special tokens (a judge sees what the model wrote), but not the EOS that ended the row.
        raw = [t[:-1] if s and t else t for t, s in zip(tokens, stopped, strict=True)]
        return SteerReply(
            texts=tuple(self.tokenizer.decode(t, skip_special_tokens=True) for t in tokens),
            token_ids=tuple(tuple(t) for t in tokens),
            prompt_token_counts=tuple(len(p) for p in prompt_ids),
            response_token_counts=tuple(len(t) for t in tokens),
            stopped_at_eos=tuple(stopped),
            tags=tuple(row.tag for row in request.rows),
            seconds=seconds,
            raw_texts=tuple(self.tokenizer.decode(t, skip_special_tokens=False) for t in raw),
        )

    def project(self, request: ProjectRequest) -> ProjectReply:
        """Generate like ``steer`` and record ``h . v / |v|`` at every generation step (monitoring)."""
        if request.component not in STEERABLE_COMPONENTS:
            raise ValueError(f"component: {request.component!r} cannot be projected; use one of "
                             f"{', '.join(STEERABLE_COMPONENTS)}")
        started = time.perf_counter()
        layers = [self._check_layer(layer) for layer in request.layers]
        unit = self.vectors.units(request.vector_ids, layers)  # [n_vectors, n_layers, hidden]
        prompt_ids = [encode_prompt(self.tokenizer, row.prompt) for row in request.steer.rows]
        points = [(layer, request.component) for layer in layers]
        output = self._generate_all(request.steer, prompt_ids, self.max_batch_size, points=points)
        assert output.activations is not None
        projections = tuple(
            torch.einsum("sld,vld->svl", steps, unit.to(steps.device)).cpu().numpy().astype(np.float32)
            for steps in output.activations
        )
        return ProjectReply(
            generation=self._reply(request.steer, prompt_ids, output, time.perf_counter() - started),
            projections=projections, vector_ids=tuple(request.vector_ids), layers=tuple(layers),
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
        output = self._generate_all(steer_request, prompt_ids, request.batch_size)
        # The EOS that ended a response is not part of it: replaying the text would not contain it.
        return [[t for t in tokens if t not in self._eos_ids] for tokens in output.tokens]

    @torch.inference_mode()
    def _forward_capture(
        self, sequences: Sequence[list[int]], points: list[tuple[int, str]]
    ) -> tuple[dict[tuple[int, str], torch.Tensor], int]:
        """One forward pass over left-padded sequences; returns each point's output ``[batch, width, dim]``.

        With the fast path on, the width is padded to its length bucket (the capture side shares the buckets).
        """
        input_ids, attention_mask = self._padded(sequences, bucket=self.fast_generator is not None)
        with capturing(self.model, self.layout, points) as records:
            self.model(input_ids=input_ids, attention_mask=attention_mask,
                       position_ids=position_ids_from_mask(attention_mask), use_cache=False)
        return {point: records[point][0] for point in points}, input_ids.shape[1]

    def capture(self, request: CaptureRequest) -> CaptureReply:
        """Activations at the requested layers x components x positions (see ``CaptureRequest``)."""
        started = time.perf_counter()
        layers = (list(range(self.num_layers)) if request.layers is None
                  else [self._check_layer(layer) for layer in request.layers])
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
            self._check_layer(layer) for layer in layers
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
            input_ids, attention_mask = self._padded([prompt_ids[i] for i in batch])
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                position_ids=position_ids_from_mask(attention_mask), use_cache=False).logits
            logprobs = torch.log_softmax(logits[:, -1, :].float(), dim=-1)
            values, indices = logprobs.topk(min(k, logprobs.shape[-1]), dim=-1)
            for j, i in enumerate(batch):
                results[i] = [(self.tokenizer.decode([int(t)]), float(v))
                              for t, v in zip(indices[j].tolist(), values[j].tolist(), strict=True)]
        return results
