"""The portal as hospital staff use it, in a real headless Chromium against real portal servers on anvil:
break-glass finished in the pages, a revoked reader left without a Download button, each form only for
the roles that can use it, names instead of hex, the portal at `localhost` as at 127.0.0.1, the token
traded for a session cookie, and every page of every role accessible and phone-sized.

One portal server per account serves the whole module (starting one costs seconds); each test opens
fresh browser pages on them, and the chain rolls back after each test as everywhere else.
"""

from __future__ import annotations

import http.client
import json
import os
import re
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from offchain.addressbook import remember_names
from offchain.cli import main
from offchain.chain.roles import Role
from offchain.settings import Settings

from .conftest import PASSPHRASE, Portals
from .pages import PHONE, check_every_page
from .test_portal import _click_for_alert, _request, _upload

ADMIN, HOSPITAL, DOCTOR, PATIENT, RESEARCHER, MEDIC, STRANGER = 0, 1, 2, 3, 4, 5, 9
NAMES = {HOSPITAL: "St Mary's Hospital", DOCTOR: "Dr Ada Byron", PATIENT: "Pat Jones", RESEARCHER: "Rosalind F.",
         MEDIC: "Dr Emergency"}
READABLE_DATE = re.compile(r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d UTC")


@pytest.fixture(scope="module")
def home(tmp_path_factory, accounts, access):
    """The module's data folder: every member's keystore (keys published), the address book, the store."""
    folder = tmp_path_factory.mktemp("staff")
    env = {"MEDSHARE_HOME": str(folder), "MEDSHARE_PASSPHRASE": PASSPHRASE, "MEDSHARE_DEPLOYMENTS": None}
    for index in (ADMIN, HOSPITAL, DOCTOR, PATIENT, RESEARCHER, MEDIC):
        result = CliRunner().invoke(main, ["keys", "publish", "--account", f"TEST::{index}", "--contract", access.address],
                                    env=env)
        assert result.exit_code == 0, result.output
    remember_names(Settings(home=folder), {accounts[index].address: name for index, name in NAMES.items()})
    return folder


@pytest.fixture(scope="module")
def staff(home, browser, chain, access, tmp_path_factory):
    env = {key: value for key, value in os.environ.items() if key != "MEDSHARE_DEPLOYMENTS"}
    portals = Portals(browser, chain.provider.uri, access.address,
                      env | {"MEDSHARE_HOME": str(home), "MEDSHARE_PASSPHRASE": PASSPHRASE})
    yield portals
    portals.close(False, tmp_path_factory.mktemp("staff-logs"))


@pytest.fixture
def pages(staff, request, tmp_path):
    """``pages(index, **options)``: a new page on the module's portal of account ``index``."""
    yield staff.open
    failed = getattr(request.node, "report_call", None) is not None and request.node.report_call.failed
    for index, page in staff.pages:
        if failed:
            page.screenshot(path=str(tmp_path / f"portal-account-{index}.png"), full_page=True)
        page.context.close()
    staff.pages.clear()


def _api(url: str, method: str, path: str, body: dict | None = None):
    """A call to the portal at ``url`` (the printed one), as a script would make it: the token in its header."""
    origin, token = url.split("/?token=")
    status, _, answer = _request(f"{origin}{path}", token=token, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    assert status == 200, answer
    return answer


def _download(page, record_id: str, into):
    with page.expect_download() as download_info:
        page.click(f"#shared-table tr[data-record='{record_id}'] .record-download")
    download_info.value.save_as(into)
    return into.read_bytes()


def test_break_glass_is_finished_in_the_pages(pages, accounts, patient, medic, tmp_path):
    scan = tmp_path / "trauma_ct.dcm"
    scan.write_bytes(os.urandom(300_000))
    hospital_page = pages(HOSPITAL)
    record_id = _upload(hospital_page, scan, patient.address, "trauma_ct")
    assert hospital_page.locator("#emergency-pending-card").is_hidden()  # nobody waits yet

    medic_page = pages(MEDIC)
    medic_page.click("#tab-read")
    medic_page.fill("#emergency-record", record_id)
    medic_page.fill("#emergency-reason", "unconscious patient in A&E, allergies unknown")
    medic_page.fill("#emergency-hours", "2")
    kind, text = _click_for_alert(medic_page, "#emergency-submit")
    assert kind == "warning" and "must share its key" in text and READABLE_DATE.search(text), text
    row = medic_page.wait_for_selector(f"#shared-table tr[data-record='{record_id}'][data-access='waiting']")
    assert row.query_selector(".access").inner_text() == "waiting for the owner's key"
    assert row.query_selector(".record-download") is None

    hospital_page.reload()
    hospital_page.wait_for_selector("body[data-loaded='true']")
    item = hospital_page.locator(f"#emergency-pending .pending-share[data-record='{record_id}']")
    assert item.get_attribute("data-reader") == medic.address
    assert "Dr Emergency" in item.inner_text()  # a name from the address book, not the address
    assert item.locator(".who").get_attribute("title").startswith(medic.address)
    kind, text = _click_for_alert(hospital_page, f".pending-share[data-record='{record_id}'] .share-key")
    assert kind == "success" and "Dr Emergency can now read" in text, text
    hospital_page.wait_for_selector("#emergency-pending-card.d-none", state="attached")

    medic_page.reload()
    medic_page.wait_for_selector("body[data-loaded='true']")
    medic_page.click("#tab-read")
    medic_page.wait_for_selector(f"#shared-table tr[data-record='{record_id}'][data-access='readable']")
    assert _download(medic_page, record_id, tmp_path / "read.bin") == scan.read_bytes()

    patient_page = pages(PATIENT)  # the patient sees who broke the glass and read, by name
    patient_page.click("#tab-mydata")
    card = patient_page.locator(f".my-record[data-record='{record_id}']")
    assert "Break-glass by Dr Emergency" in card.locator(".break-glass").inner_text()
    assert card.locator(f".logged-read[data-reader='{medic.address}']").count() == 1


def test_a_revoked_reader_has_no_download_button_and_records_show_names_dates_and_cids(
        pages, patient, doctor, tmp_path):
    report = tmp_path / "blood_panel.pdf"
    report.write_bytes(os.urandom(50_000))
    hospital_page = pages(HOSPITAL)
    record_id = _upload(hospital_page, report, patient.address, "blood_panel")
    row = hospital_page.locator(f"#records-table tr[data-record='{record_id}']")
    assert "Pat Jones / blood_panel" in row.inner_text()

    row.locator(".record-open").click()
    hospital_page.wait_for_selector("#grant-form")
    hospital_page.fill("#grant-grantee", "Dr Ada Byron")  # a known name stands for the address
    hospital_page.fill("#grant-days", "7")
    kind, text = _click_for_alert(hospital_page, "#grant-submit")
    assert kind == "success" and READABLE_DATE.search(text) and not re.search(r"\d{9,}", text), text
    reader = hospital_page.wait_for_selector(f"#readers-table tr[data-grantee='{doctor.address}']")
    assert "Dr Ada Byron" in reader.inner_text() and READABLE_DATE.search(reader.inner_text())
    (entry,) = [entry for entry in _api(hospital_page.portal_url, "GET", "/api/records") if entry["record_id"] == record_id]
    assert hospital_page.inner_text("#versions-list [data-version='1'] .cid") == entry["cid"]

    doctor_page = pages(DOCTOR)
    doctor_page.click("#tab-read")
    doctor_page.wait_for_selector(f"#shared-table tr[data-record='{record_id}'][data-access='readable'] .record-download")

    hospital_page.fill("#revoke-grantee", doctor.address)
    kind, text = _click_for_alert(hospital_page, "#revoke-submit")
    assert kind == "success" and "version 2" in text, text
    hospital_page.wait_for_selector("#versions-list [data-version='2'] .cid")

    doctor_page.reload()
    doctor_page.wait_for_selector("body[data-loaded='true']")
    doctor_page.click("#tab-read")
    gone = doctor_page.wait_for_selector(f"#shared-table tr[data-record='{record_id}'][data-access='none']")
    assert gone.query_selector(".access").inner_text() == "no access now"
    assert gone.query_selector(".record-download") is None


def test_each_form_only_for_the_roles_that_can_use_it_and_admin_changes_are_confirmed(
        pages, access, chain, admin, stranger):
    doctor_page = pages(DOCTOR)
    assert doctor_page.locator("#tab-read.active").count() == 1
    for form in ("#member-form", "#upload-form", "#relay-form", "#emergency-form", "#consent-form", "#sign-form"):
        assert doctor_page.locator(form).count() == 0, form
    assert doctor_page.locator("#open-form").is_visible()
    assert doctor_page.locator("#tab-records").is_hidden() and doctor_page.locator("#tab-mydata").is_hidden()
    doctor_page.click("#tab-consortium")
    doctor_page.wait_for_selector("#members-table tr[data-role='admin']")
    assert doctor_page.locator("#member-form").count() == 0

    admin_page = pages(ADMIN)
    assert admin_page.locator("#tab-consortium.active").count() == 1
    assert admin_page.input_value("#member-role") == ""  # no role is chosen for the admin
    nonce = chain.provider.web3.eth.get_transaction_count(admin.address)
    admin_page.select_option("#member-role", "doctor")
    admin_page.fill("#member-address", stranger.address)
    admin_page.press("#member-address", "Enter")  # Enter adds nobody
    admin_page.wait_for_timeout(500)
    assert admin_page.locator("#alerts .alert").count() == 0
    assert chain.provider.web3.eth.get_transaction_count(admin.address) == nonce

    admin_page.select_option("#member-role", "admin")
    admin_page.click("#member-add")
    modal = admin_page.wait_for_selector("#confirm-modal.show")
    assert "consortium admin" in modal.inner_text() and stranger.address in modal.inner_text()
    admin_page.click("#confirm-no")
    assert admin_page.wait_for_selector("#alerts .alert").inner_text() == "Nothing was changed."
    assert chain.provider.web3.eth.get_transaction_count(admin.address) == nonce
    assert not access.rolesOf(stranger) & Role.ADMIN

    admin_page.select_option("#member-role", "doctor")
    admin_page.fill("#member-label", "Dr Locum")
    kind, text = _click_for_alert(admin_page, "#member-add")
    assert kind == "success", text
    named = admin_page.wait_for_selector(f"#members-table tr[data-role='doctor'] .member[data-member='{stranger.address}'] .who")
    assert named.inner_text() == "Dr Locum" and named.get_attribute("title").startswith(stranger.address)
    admin_page.click("#member-remove")
    assert "Take the doctor role away" in admin_page.wait_for_selector("#confirm-modal.show").inner_text()
    admin_page.click("#confirm-yes")
    admin_page.wait_for_selector(f"#members-table tr[data-role='doctor'] .member[data-member='{stranger.address}']",
                                 state="detached")


def test_a_write_from_localhost_succeeds(pages, staff, patient, tmp_path):
    printed = staff.url(HOSPITAL)
    at_localhost = printed.replace("http://127.0.0.1:", "http://localhost:")
    page = pages(HOSPITAL, url=at_localhost)
    assert page.url.startswith("http://localhost:") and "token" not in page.url
    note = tmp_path / "note.txt"
    note.write_bytes(b"discharge note")
    record_id = _upload(page, note, patient.address, "discharge_note")
    assert page.locator(f"#records-table tr[data-record='{record_id}']").count() == 1


def _raw(url: str, path: str, headers: dict[str, str] | None = None):
    """One request, redirects not followed: (status, headers)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, response.headers


SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options")


def test_the_token_opens_the_page_once_and_is_refused_on_the_api(staff, pages):
    printed = staff.url(DOCTOR)
    origin, token = printed.split("/?token=")
    port = urlsplit(origin).port

    status, headers = _raw(origin, f"/?token={token}")
    assert status == 303 and headers["Location"] == "/" and headers["Cache-Control"] == "no-store"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"medshare-session-{port}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    session = cookie.split(";")[0]
    status, headers = _raw(origin, "/")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert all(name in headers for name in SECURITY_HEADERS)

    status, headers = _raw(origin, f"/api/session?token={token}")
    assert status == 403 and all(name in headers for name in SECURITY_HEADERS) and headers["Cache-Control"] == "no-store"
    status, _ = _raw(origin, "/api/session", {"Cookie": session})  # the cookie alone: not the page
    assert status == 403
    status, _ = _raw(origin, "/api/session", {"Cookie": session, "X-MedShare-Page": "1"})
    assert status == 200
    status, headers = _raw(origin, "/api/session", {"Host": "evil.example"})
    assert status == 403 and all(name in headers for name in SECURITY_HEADERS)
    status, headers = _raw(origin, "/no/such/page")
    assert status == 404 and all(name in headers for name in SECURITY_HEADERS)

    errors = _api(printed, "GET", "/api/session")["contract"]["errors"]  # refusals in words, constants filled in
    assert not [notice for notice in errors.values() if "{" in notice]
    assert "opened break-glass access to `record` 3 times already" in errors["EmergencyOpeningsExhausted"]

    status, headers = _raw(origin, "/?token=wrong")
    assert status == 303 and "Set-Cookie" not in headers
    for url in (f"{origin}/?token=wrong", f"{origin}/"):  # a wrong token, or none: one clear state
        page = pages(DOCTOR, url=url, loaded=False)
        page.wait_for_selector("body[data-ready='failed']")
        assert page.inner_text("#whoami") == "not connected"
        alerts = page.locator("#alerts .alert-danger")
        assert alerts.count() == 1 and "token is missing or wrong" in alerts.inner_text()
        assert page.locator("form :is(input, select, textarea, button):enabled").count() == 0


def test_every_page_of_every_role_is_accessible_and_fits_a_phone(pages, staff, accounts, patient, tmp_path):
    hospital_page = pages(HOSPITAL, axe=True)
    # Something on every page: a record granted, read, opened in an emergency and waiting for its key.
    scan = tmp_path / "xray.png"
    scan.write_bytes(os.urandom(20_000))
    record_id = _upload(hospital_page, scan, patient.address, "chest_xray")
    _api(staff.url(HOSPITAL), "POST", f"/api/records/{record_id}/grant",
         {"grantees": [accounts[DOCTOR].address], "days": 7})
    origin, token = staff.url(DOCTOR).split("/?token=")
    assert _raw(origin, f"/api/records/{record_id}/content", {"X-MedShare-Token": token})[0] == 200
    _api(staff.url(MEDIC), "POST", f"/api/records/{record_id}/emergency", {"reason": "cardiac arrest", "hours": 2})

    problems = []
    roles = [("admin", ADMIN, ("consortium",)), ("hospital", HOSPITAL, ("records",)), ("doctor", DOCTOR, ()),
             ("patient", PATIENT, ("mydata",)), ("medic", MEDIC, ("read",)), ("stranger", STRANGER, ())]
    for role, index, shoot in roles:
        page = pages(index, axe=True)
        if index == HOSPITAL:
            page.wait_for_selector(f".pending-share[data-record='{record_id}']")
            page.click(f"#records-table tr[data-record='{record_id}'] .record-open")
            page.wait_for_selector("#grant-form")
        problems += check_every_page(page, role, tmp_path, shoot=shoot)
    assert not problems, "\n".join(problems)

    phone = pages(DOCTOR, viewport=PHONE)  # the menu collapses behind its button and opens on a tap
    assert phone.locator("#tab-studies").is_hidden()
    phone.click(".navbar-toggler")
    phone.click("#tab-studies")
    phone.wait_for_selector("#studies.tab-pane.active.show")
