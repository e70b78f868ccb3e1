"""Detectors are data: YAML files parsed by ``spec``, run by ``engine``, checked by ``check``."""

from auditor.detectors.engine import CompiledDetector, DetectorSet
from auditor.detectors.spec import Detector, load_detectors

__all__ = ["CompiledDetector", "Detector", "DetectorSet", "load_detectors"]
