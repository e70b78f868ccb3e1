"""Detectors are data: YAML files parsed by ``spec`` and run by ``engine``."""

from auditor.detectors.engine import CompiledDetector
from auditor.detectors.spec import Detector, load_detectors

__all__ = ["CompiledDetector", "Detector", "load_detectors"]
