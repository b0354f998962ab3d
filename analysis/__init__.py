"""Vector extraction, diagnostics, BAI, correlation, transfer and weight-space analysis."""

from .activation_set import ActivationSet, stack_layers
from .diagnostics import LabelPolarity, LayerDiagnostics, cohens_d, diagnose, diagnose_layer, label_polarity
from .extraction import (
    METHODS,
    ExtractionMethod,
    ExtractionResult,
    LayeredActivations,
    as_layers,
    get_method,
    gradient,
    mean_diff,
    orient,
    probe,
)
from .generalization import GeneralizationMatrix, generalization_matrix, heldout_split
from .repair import (
    CosineFilterResult,
    InsufficientClassError,
    PcaDenoiseResult,
    binarize_scores,
    class_cosines,
    contrastive_probe,
    cosine_filter,
    pca_denoise,
)
from .trait_dataset import (
    POLARITIES,
    Scenario,
    TraitDataset,
    TraitDatasetError,
    assign_splits,
    load_trait_dataset,
)
from .stats import (
    Correlation,
    StatisticsError,
    partial_correlation,
    pearson,
    predictor_correlations,
    spearman,
)
from .trait_vector import TraitVector

__all__ = [
    "METHODS",
    "POLARITIES",
    "ActivationSet",
    "CosineFilterResult",
    "ExtractionMethod",
    "ExtractionResult",
    "GeneralizationMatrix",
    "InsufficientClassError",
    "LabelPolarity",
    "LayerDiagnostics",
    "LayeredActivations",
    "PcaDenoiseResult",
    "Scenario",
    "TraitDataset",
    "TraitDatasetError",
    "TraitVector",
    "as_layers",
    "assign_splits",
    "binarize_scores",
    "class_cosines",
    "cohens_d",
    "contrastive_probe",
    "cosine_filter",
    "diagnose",
    "diagnose_layer",
    "generalization_matrix",
    "get_method",
    "gradient",
    "heldout_split",
    "label_polarity",
    "load_trait_dataset",
    "mean_diff",
    "orient",
    "pca_denoise",
    "probe",
    "stack_layers",
]
