"""The toy model family: a synthetic chat language with a planted, steerable trait."""
