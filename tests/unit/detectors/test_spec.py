"""detectors.spec: detector files are data; a malformed one is refused naming the file and the field."""

from __future__ import annotations

import pytest

from auditor.detectors import spec as detector_spec
from auditor.errors import DetectorFileError
from tests.helpers.detectors import BAD_REGEX, DELETE, builtin_doc, edited, write_detector

MALFORMED = [
    pytest.param(lambda: builtin_doc(name=DELETE), "name", id="missing-name"),
    pytest.param(lambda: builtin_doc(matchers=DELETE), "matchers", id="missing-matchers"),
    pytest.param(lambda: edited(builtin_doc(), "matchers.client_id.pattern", BAD_REGEX), "matchers.client_id.pattern",
                 id="bad-regex"),
    pytest.param(lambda: edited(builtin_doc(), "pre_validators.0.banlist_extensions.2", "^(lock$"),
                 "banlist_extensions", id="bad-banlist-regex"),
    pytest.param(lambda: builtin_doc(high_recall="yes please"), "high_recall", id="wrong-type-bool"),
    pytest.param(lambda: builtin_doc(minimum_number_of_matches="two"), "minimum_number_of_matches",
                 id="wrong-type-int"),
    pytest.param(lambda: builtin_doc(matchers=["client_id"]), "matchers", id="wrong-type-mapping"),
]


@pytest.mark.parametrize(("make_doc", "field"), MALFORMED)
def test_malformed_detector_file_names_file_and_field(tmp_path, make_doc, field):
    path = write_detector(tmp_path, "custom.yaml", make_doc())
    with pytest.raises(DetectorFileError) as info:
        detector_spec.load_detectors(tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert field in message


def test_yaml_syntax_error_names_the_file(tmp_path):
    path = write_detector(tmp_path, "broken.yml", "id: x\nmatchers: [unclosed\n")
    with pytest.raises(DetectorFileError) as info:
        detector_spec.load_detectors(tmp_path)
    assert str(path) in str(info.value)


def test_valid_extra_detector_is_added(tmp_path):
    write_detector(tmp_path, "custom.yaml", builtin_doc())
    (tmp_path / "notes.txt").write_text("not a detector", encoding="utf-8")
    ids = [d.id for d in detector_spec.load_detectors(tmp_path)]
    assert sorted(ids) == ["custom_twilio", "twilio_master_credentials"]
