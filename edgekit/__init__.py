"""edgekit: deploy recursive reasoning models (HRM, TRM, DEQ) to edge devices, with validation gates."""

__version__ = "0.1.0"
