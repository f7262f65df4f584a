"""The web portal as its users click it, in a real headless Chromium against real portal servers on anvil."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from offchain.web.server import TOKEN_HEADER


def _request(url: str, *, token: str | None = None, method: str = "GET", data: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if token is not None:
        request.add_header(TOKEN_HEADER, token)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"{}")


def _origin_and_token(page) -> tuple[str, str]:
    origin, _, token = page.portal_url.partition("/?token=")
    return origin, token


def _click_for_alert(page, selector: str) -> tuple[str, str]:
    """Click ``selector`` and wait for the alert it produces: (its kind, its text)."""
    page.eval_on_selector("#alerts", "node => node.replaceChildren()")
    page.click(selector)
    alert = page.wait_for_selector("#alerts .alert")
    return alert.get_attribute("data-kind"), alert.inner_text()


def _upload(page, path, patient: str, name: str) -> str:
    page.click("#tab-records")
    page.set_input_files("#upload-file", str(path))
    page.fill("#upload-patient", patient)
    page.fill("#upload-name", name)
    kind, text = _click_for_alert(page, "#upload-submit")
    assert kind == "success", text
    return text.rsplit("record ", 1)[1].strip()


def _grant(page, record_id: str, grantee: str, days: str = "7") -> None:
    page.click(f"#records-table tr[data-record='{record_id}'] .record-open")
    page.wait_for_selector("#grant-form")
    page.fill("#grant-grantee", grantee)
    page.fill("#grant-days", days)
    kind, text = _click_for_alert(page, "#grant-submit")
    assert kind == "success" and "Granted until" in text, text


def test_api_refuses_requests_without_the_token_and_touches_nothing(portal, publish_keys, hospital, patient,
                                                                   portal_home):
    publish_keys(1, 3)
    page = portal(1)
    origin, token = _origin_and_token(page)

    for bad in (None, "", "not-the-token", token[:-1]):
        status, _, body = _request(f"{origin}/api/session", token=bad)
        assert status == 403 and "token" in body["error"]
    status, _, _ = _request(f"{origin}/api/records?patient={patient.address}&name=sneaky", method="POST",
                            data=b"secret bytes", token="wrong")
    assert status == 403
    status, _, body = _request(f"{origin}/api/records", token=token)
    assert status == 200 and body == []  # nothing was uploaded by the refused request

    status, headers, _ = _request(f"{origin}/api/session", token=token, headers={"Host": "evil.example:80"})
    assert status == 403
    status, _, _ = _request(f"{origin}/api/session", token=token, headers={"Origin": "http://evil.example"})
    assert status == 403

    status, headers, session = _request(f"{origin}/api/session", token=token)
    assert status == 200 and session["account"] == hospital.address and "data-owner" in session["roles"]
    assert "Access-Control-Allow-Origin" not in headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    # The page itself loads only the portal's own scripts, served from the npm packages.
    scripts = page.eval_on_selector_all("script", "nodes => nodes.map(node => node.getAttribute('src'))")
    assert scripts and all(src.startswith(("/vendor/", "/static/")) for src in scripts)
    assert "token" not in page.url  # taken out of the address bar once read


def test_hospital_uploads_and_grants_doctor_downloads_the_same_bytes_stranger_is_refused_patient_sees_the_read(
        portal, publish_keys, access, hospital, doctor, patient, stranger, tmp_path):
    publish_keys(1, 2, 3)
    scan = tmp_path / "MRI_scan.dcm"
    scan.write_bytes(os.urandom((1 << 20) + 12345))

    hospital_page = portal(1)
    record_id = _upload(hospital_page, scan, patient.address, "MRI_scan")
    assert hospital_page.locator(f"#records-table tr[data-record='{record_id}']").count() == 1
    _grant(hospital_page, record_id, doctor.address)
    hospital_page.click(f"#records-table tr[data-record='{record_id}'] .record-open")
    row = hospital_page.wait_for_selector(f"#readers-table tr[data-grantee='{doctor.address}'] .can-read")
    assert row.inner_text() == "yes"

    doctor_page = portal(2)
    doctor_page.click("#tab-read")
    with doctor_page.expect_download() as download_info:
        doctor_page.click(f"#shared-table tr[data-record='{record_id}'] .record-download")
    downloaded = tmp_path / "downloaded.bin"
    download_info.value.save_as(downloaded)
    assert downloaded.read_bytes() == scan.read_bytes()

    stranger_page = portal(9)  # no role: no form to read with; the API refuses in words
    assert stranger_page.locator("#open-form").count() == 0
    origin, token = _origin_and_token(stranger_page)
    status, _, answer = _request(f"{origin}/api/records/{record_id}/content", token=token)
    assert status == 403 and "no grant" in answer["error"] and stranger.address in answer["error"]

    patient_page = portal(3)
    patient_page.click("#tab-mydata")
    card = patient_page.locator(f".my-record[data-record='{record_id}']")
    assert card.locator(f".logged-read[data-reader='{doctor.address}']").count() == 1
    assert card.locator(f".logged-read[data-reader='{stranger.address}']").count() == 0


def test_patient_signs_a_grant_in_the_page_and_the_hospital_relays_it(portal, publish_keys, access, hospital,
                                                                     patient, researcher, tmp_path):
    publish_keys(1, 3, 4)
    report = tmp_path / "report.json"
    report.write_bytes(b'{"diagnosis": "benign"}')
    hospital_page = portal(1)
    record_id = _upload(hospital_page, report, patient.address, "diagnosis_report")
    assert not access.checkAccess(researcher, record_id)

    patient_page = portal(3, wallet=patient.address)
    patient_page.click("#tab-mydata")
    patient_page.fill("#sign-record", record_id)
    patient_page.fill("#sign-grantee", researcher.address)
    patient_page.fill("#sign-days", "30")
    kind, text = _click_for_alert(patient_page, "#sign-submit")
    assert kind == "success", text
    signed = patient_page.input_value("#signed-grant")
    assert json.loads(signed)["grantee"] == researcher.address

    hospital_page.click("#tab-records")
    hospital_page.fill("#relay-json", signed)
    kind, text = _click_for_alert(hospital_page, "#relay-submit")
    assert kind == "success" and researcher.address in text, text
    assert access.checkAccess(researcher, record_id)  # the patient's signature carried consent

    hospital_page.fill("#relay-json", signed)  # the same signature again: its nonce is spent
    kind, text = _click_for_alert(hospital_page, "#relay-submit")
    assert kind == "danger" and "Traceback" not in text


BAD_GRANTS = [
    ({"grantees": ["0x1234"], "days": 1}, "not an Ethereum address"),
    ({"grantees": [], "days": 1}, "non-empty list"),
    ({"grantees": ["0x3c44cdddb6a900fa2b585dd299e03d12fa4293bC"], "days": 1}, "checksum"),
    ({"grantees": ["0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"], "days": "inf"}, "finite"),
    ({"grantees": ["0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"], "days": "nan"}, "finite"),
    ({"grantees": ["0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"], "days": 1e300}, "largest expiry"),
    ({"grantees": ["0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"], "days": -1}, "not a positive"),
    ({"grantees": ["0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"], "days": 1}, "no record 0x1111"),
]


def test_api_bad_input_is_one_clear_error_and_sends_nothing(portal, publish_keys, chain, hospital):
    publish_keys(1)
    page = portal(1)
    origin, token = _origin_and_token(page)
    nonce = chain.provider.web3.eth.get_transaction_count(hospital.address)
    for body, expected in BAD_GRANTS:
        status, _, answer = _request(f"{origin}/api/records/0x{'11' * 32}/grant", token=token, method="POST",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        assert status == 400 and expected in answer["error"], (body, answer)
    for path, data in [("/api/records/0xzz/grant", b"{}"), (f"/api/records/0x{'11' * 32}/grant", b"not json"),
                       ("/api/relay/grant", b'{"record": "0x12"}')]:
        status, _, answer = _request(f"{origin}{path}", token=token, method="POST", data=data,
                                     headers={"Content-Type": "application/json"})
        assert status == 400 and answer["error"], (path, answer)
    assert chain.provider.web3.eth.get_transaction_count(hospital.address) == nonce
