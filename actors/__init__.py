"""ModelActor (one loaded model as a Ray actor), hooks, positions, generation and judges."""

from .capacity import row_capacity
from .fast_generation import FastGenerator
from .fast_model import FastModel, FastPathUnsupported
from .handle import ModelHandle
from .hooks import SteeringDeltas, capturing, steering
from .layers import (
    KNOWN_LAYOUTS,
    LayerLayout,
    LayerOutOfRangeError,
    UnknownArchitectureError,
    check_layer,
    component_module,
    num_layers,
    resolve_layout,
)
from .loading import ModelLoadError, ModelSpec, load_model
from .messages import (
    COMPONENTS,
    STEERABLE_COMPONENTS,
    ActivationKey,
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
from .model_actor import ModelActor
from .model_worker import ModelWorker
from .paths import RunPaths
from .positions import Position, PositionSyntaxError, parse_positions
from .prompts import PromptError, encode_prompt, encode_response
from .vectors import VectorError, VectorTable

__all__ = [
    "COMPONENTS",
    "KNOWN_LAYOUTS",
    "STEERABLE_COMPONENTS",
    "ActivationKey",
    "ActivationNorms",
    "CaptureReply",
    "CaptureRequest",
    "FastGenerator",
    "FastModel",
    "FastPathUnsupported",
    "LayerLayout",
    "LayerOutOfRangeError",
    "ModelActor",
    "ModelHandle",
    "ModelInfo",
    "ModelLoadError",
    "ModelSpec",
    "ModelWorker",
    "Position",
    "PositionSyntaxError",
    "ProjectReply",
    "ProjectRequest",
    "PromptError",
    "PromptInput",
    "RunPaths",
    "SteerReply",
    "SteerRequest",
    "SteerRow",
    "SteeringDeltas",
    "SteeringTerm",
    "UnknownArchitectureError",
    "VectorError",
    "VectorTable",
    "capturing",
    "check_layer",
    "component_module",
    "encode_prompt",
    "encode_response",
    "load_model",
    "num_layers",
    "parse_positions",
    "resolve_layout",
    "row_capacity",
    "steering",
]
