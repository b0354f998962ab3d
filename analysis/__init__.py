"""Vector extraction, diagnostics, BAI, correlation, transfer and weight-space analysis."""
