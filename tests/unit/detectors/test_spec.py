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
    pytest.param(lambda: edited(builtin_doc(), "check.responses.0.validity", "unchecked"),
                 "check.responses[0].validity", id="rule-validity"),
    pytest.param(lambda: edited(builtin_doc(), "check.responses.1.keep", {"subaccount": {"key": "x"}}),
                 "check.responses[1].keep.subaccount", id="keep-test"),
    pytest.param(lambda: edited(builtin_doc(), "check.responses.3.ask_other_regions", "yes"),
                 "check.responses[3].ask_other_regions", id="ask-other-regions"),
    pytest.param(lambda: edited(builtin_doc(), "check.regional_bases.ie1", "api.dublin.ie1.twilio.com"),
                 "check.regional_bases.ie1", id="regional-base-url"),
    pytest.param(lambda: edited(builtin_doc(), "check.regional_bases", {"Dublin": "https://x.example"}),
                 "check.regional_bases", id="region-name"),
    pytest.param(lambda: edited(builtin_doc(), "check.base_region", "US 1"), "check.base_region", id="base-region"),
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
    assert sorted(ids) == ["custom_twilio", "twilio_api_keys", "twilio_master_credentials"]


def test_the_twilio_check_reads_as_spec_5_says():
    """The built-in decision table: closed before live, the 401 only with Twilio's code (and the one that may be
    another region's token), Twilio's 404 final; US1 the base, the regional hosts and the per-account 429."""
    check = next(d for d in detector_spec.load_detectors() if d.id == "twilio_master_credentials").check
    rows = [(r.status, dict(r.json or {}), r.validity.value, r.scope, r.ask_other_regions) for r in check.responses]
    assert rows == [
        (200, {"sid": "{client_id}", "status": "closed"}, "invalid", None, False),
        (200, {"sid": "{client_id}"}, "valid", "live", False),
        (403, {"code": 20008}, "valid", "test", False),
        (401, {"code": 20003}, "invalid", None, True),
        (403, {"code": 20403}, "invalid", None, False),
        (404, {"code": 20404}, "failed_to_check", None, False)]
    assert check.responses[1].keep == {"account_status": "status", "account_type": "type",
                                       "subaccount": detector_spec.Differs(key="owner_account_sid",
                                                                           other="{client_id}")}
    assert (check.base, check.base_region) == ("https://api.twilio.com", "us1")
    assert check.regional_bases["ie1"] == "https://api.dublin.ie1.twilio.com"
    assert set(check.regional_bases) == {"au1", "br1", "de1", "ie1", "jp1", "jp2", "sg1", "us2"}
    assert dict(check.throttle_per_client) == {"code": 20429}
